"""Per-word detection thresholds chosen on labelled validation streams, written into a bundle.

The streams are a commands stream (``kws make-stream --data DIR --split validation``) and
streams rich in negative audio (``kws make-stream --negatives DIR --split validation``: real
running speech of readers training never heard, other words). Each is replayed once through
the real ``Detector``, recording the smoothed posteriors of every hop; each word's threshold is
then the lowest level at which that word alone makes at most ``--errors`` errors (default 0) on
all of them together (false alarms on the negatives or other words, firing on another command
word), so the words' false alarms stay near zero per hour on real speech, but never above the
level where the word would lose more than ``1 - --keep-hits`` of its hits. The choice, the
posterior smoothing it was made with (``--config``'s ``posterior.smoothing_ms``: thresholds hold
for that smoothing, so the runtime uses it unless the user sets another) and the streams' score
with the chosen thresholds go into the metadata.

    python -m kws_train.thresholds --model models/default --wav val.wav --wav speech.wav
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from kws.bundle import Bundle, load_bundle, rewrite_metadata
from kws.config import Config, load_config, with_overrides
from kws.eval.scoring import Recording, record_stream, rescore, sweep
from kws.eval.testaudio import labels_path, read_labels
from kws.posterior import smoothing_ms
from kws.writes import to_json

# Finer near 1: exported models give float posteriors (no int8 saturation), and the thresholds
# that keep running speech quiet live there.
LEVELS = np.round(np.concatenate([np.arange(0.5, 0.95, 0.01), np.arange(0.95, 0.999, 0.002),
                                  [0.999, 0.9995, 0.9998, 0.9999]]), 4)


def choose(recordings: list[Recording], bundle: Bundle, config: Config,
           errors: int | Sequence[int] = 0, keep_hits: float = 0.0) -> tuple[dict, dict]:
    """Per-word thresholds and the streams' summed score (``Score.summary()``) with all of them.

    ``errors``: the false alarms each word may make on all ``recordings`` together, or one
    allowance per recording (e.g. none on minutes of running speech, a few on hundreds of
    other words). ``keep_hits``: a word's threshold never rises above the last level at which
    it still hears that share of the commands it hears at the lowest level, however few
    negatives ask for more: a threshold set by one or two hard negatives otherwise starves
    the word (a shipped ``up`` at 0.97 heard 61% of new speakers' clips)."""
    refractory = config.posterior.refractory_ms / 1000
    tolerance = config.stream.tolerance_ms / 1000
    groups = [(recordings, errors)] if isinstance(errors, int) else \
        [([rec], allowed) for rec, allowed in zip(recordings, errors, strict=True)]
    chosen = {}
    for word in bundle.words:
        ok = np.ones(len(LEVELS), bool)
        for recs, allowed in groups:
            rows = sweep(recs, bundle.labels, [word], list(LEVELS), refractory, tolerance)
            ok &= np.array([s.false_alarms <= allowed for _, s in rows])
        level = int(np.argmax(ok)) if ok.any() else len(LEVELS) - 1
        hits = np.array([s.hits for _, s in sweep(recordings, bundle.labels, [word], list(LEVELS),
                                                  refractory, tolerance)])
        if hits[0]:
            level = min(level, int(np.flatnonzero(hits >= keep_hits * hits[0]).max()))
        chosen[word] = float(LEVELS[level])
    thresholds = np.array([chosen.get(label, math.inf) for label in bundle.labels])
    return chosen, rescore(recordings, bundle.labels, bundle.words, thresholds, refractory,
                           tolerance).summary()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kws_train.thresholds",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, metavar="DIR")
    parser.add_argument("--wav", required=True, action="append",
                        help="a validation stream from kws make-stream (repeat for several); its "
                             "labels are the CSV beside it")
    parser.add_argument("--errors", type=int, default=0, metavar="N",
                        help="errors each word may make on the streams (default: 0)")
    parser.add_argument("--keep-hits", type=float, default=0.0, metavar="SHARE",
                        help="no word's threshold above the level where it still hears SHARE of the "
                             "commands it hears at the lowest level (default: 0, no such bound)")
    parser.add_argument("--config", help="config laid over the defaults")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    bundle = load_bundle(args.model, config)
    config = with_overrides(config, {"words": bundle.words})
    recordings = [record_stream(bundle, config, wav, read_labels(labels_path(wav)))
                  for wav in args.wav]
    thresholds, result = choose(recordings, bundle, config, args.errors, args.keep_hits)
    report = {"streams": args.wav, "minutes": round(sum(r.duration for r in recordings) / 60, 1),
              "rule": f"lowest level with at most {args.errors} errors of that word on the streams"
                      + (f", never above the level keeping {args.keep_hits:.0%} of its hits" if args.keep_hits else ""),
              **result}
    # The thresholds hold for the smoothing they were chosen with: the bundle keeps both.
    rewrite_metadata(bundle, thresholds=thresholds, smoothing_ms=smoothing_ms(config, bundle.smoothing_ms),
                     threshold_selection=report)
    print(to_json({"thresholds": thresholds, **report}, indent=1))  # strict JSON: NaN is null


if __name__ == "__main__":
    main()
