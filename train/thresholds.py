"""Per-word detection thresholds chosen on a labelled validation stream, written into a bundle.

The stream (``kws make-stream --split validation``) is replayed once through the real
``Detector``, recording the smoothed posteriors of every hop; each word's threshold is then
the lowest level at which that word alone makes no error on the stream (no false alarm, no
firing on another word), so the words' false alarms together stay near zero per hour.
The choice and the stream's score with the chosen thresholds go into the metadata.

    python -m kws_train.thresholds --model models/default --wav val.wav --labels val.csv
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from kws.bundle import Bundle, load_bundle, rewrite_metadata
from kws.config import Config, load_config, with_overrides
from kws.eval.scoring import record_stream, replay_trigger, score
from kws.eval.testaudio import read_labels

LEVELS = np.round(np.concatenate([np.arange(0.5, 0.95, 0.01), np.arange(0.95, 0.999, 0.002)]), 3)


def choose(times, scores, bundle: Bundle, labels, duration: float, config: Config) -> tuple[dict, dict]:
    """Per-word thresholds and the stream's score (``Score.summary()``) with all of them."""
    refractory = config.posterior.refractory_ms / 1000
    tolerance = config.stream.tolerance_ms / 1000
    chosen = {}
    for word in bundle.words:
        column = bundle.labels.index(word)
        for level in LEVELS:
            thresholds = np.full(len(bundle.labels), math.inf)
            thresholds[column] = level
            found = replay_trigger(times, scores, bundle.labels, thresholds, refractory)
            # Scored as the only word, firing on another command word is a false alarm too.
            if score(found, labels, [word], duration, tolerance).false_alarms == 0:
                break
        chosen[word] = float(level)
    thresholds = np.array([chosen.get(label, math.inf) for label in bundle.labels])
    found = replay_trigger(times, scores, bundle.labels, thresholds, refractory)
    return chosen, score(found, labels, bundle.words, duration, tolerance).summary()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kws_train.thresholds", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, metavar="DIR")
    parser.add_argument("--wav", required=True, help="validation stream from kws make-stream")
    parser.add_argument("--labels", required=True, help="its labels CSV")
    parser.add_argument("--config", help="config laid over the defaults")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    bundle = load_bundle(args.model, config)
    config = with_overrides(config, {"words": bundle.words})
    rec = record_stream(bundle, config, Path(args.wav))
    thresholds, result = choose(rec.times, rec.scores, bundle, read_labels(args.labels),
                                rec.duration, config)
    report = {"stream": str(args.wav), "minutes": round(rec.duration / 60, 1),
              "rule": "lowest level with no error of that word on the stream", **result}
    rewrite_metadata(bundle, thresholds=thresholds, threshold_selection=report)
    print(json.dumps({"thresholds": thresholds, **report}, indent=1))


if __name__ == "__main__":
    main()
