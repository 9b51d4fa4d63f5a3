"""Models side by side on the validation streams and the official speakers' clips: how choices
are made (``train/README.md``), never on the testing split.

For each bundle, as ``kws listen`` runs it (int8 where it has one):

- clips: accuracy and balanced accuracy of the split's official test speakers
  (``kws.data.speech_commands``) and of the whole split;
- at the bundle's own thresholds: hits on each commands stream, false alarms on every stream;
- at one threshold for every word: the lowest level whose false alarms on the negative streams
  (``--negative``, e.g. running speech and other words) stay within ``--fa-per-hour``, and the
  hits there on each commands stream (Picovoice's measure: misses at a fixed false-alarm rate).

Each stream is replayed once per model (``kws.eval.scoring.record_stream``); thresholds are
re-decided on the recording.

    python -m kws_train.compare runs/bundles/a models/default --data DIR \\
        --commands V/official.wav --commands V/official_8k.wav --negative V/speech.wav ...
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.eval.clips import evaluate_bundle, evaluation_audio
from kws.eval.scoring import record_stream, rescore, sweep
from kws.eval.testaudio import labels_path, read_labels
from kws.writes import to_json, write_text
from kws_train.thresholds import LEVELS


def compare(model: str, data: str, split: str, commands: list[str], negatives: list[str],
            fa_per_hour: float, config_path: str | None = None) -> dict:
    """One bundle's row: clip scores, its own thresholds' stream scores, one-threshold hits."""
    config = load_config(config_path)
    bundle = load_bundle(model, config)
    config = with_overrides(config, {"words": bundle.words})
    clips = evaluate_bundle(bundle, evaluation_audio(data, split, config),
                            int8=config.detector.int8 and bundle.has_int8)
    official = clips.get("official_test_speakers", {})
    rec = {wav: record_stream(bundle, config, wav, read_labels(labels_path(wav)))
           for wav in [*commands, *negatives]}
    refractory, tolerance = config.posterior.refractory_ms / 1000, config.stream.tolerance_ms / 1000
    own = np.array([rec[commands[0]].thresholds.get(label, math.inf) for label in bundle.labels])
    at_own = {Path(wav).stem: rescore([r], bundle.labels, bundle.words, own, refractory, tolerance).summary()
              for wav, r in rec.items()}
    quiet = sweep([rec[w] for w in negatives], bundle.labels, bundle.words, list(LEVELS), refractory, tolerance)
    level = next((float(lv) for lv, s in quiet if s.fa_per_hour <= fa_per_hour), float(LEVELS[-1]))
    at_level = {Path(wav).stem: sweep([rec[wav]], bundle.labels, bundle.words, [level], refractory,
                                      tolerance)[0][1].hit_rate for wav in commands}
    return {"model": model,
            "clips": {"accuracy": clips["accuracy"], "balanced": clips["balanced_accuracy"],
                      "official_accuracy": official.get("accuracy"),
                      "official_balanced": official.get("balanced_accuracy"),
                      "official_recall": {k: v["recall"] for k, v in official.get("per_class", {}).items()}},
            "own_thresholds": {name: {"hit_rate": s["hit_rate"], "false_alarms": s["false_alarms"],
                                      "latency_median_s": s["latency_median_s"]}
                               for name, s in at_own.items()},
            "one_threshold": {"level": level, "fa_per_hour_limit": fa_per_hour, "hit_rate": at_level}}


def line(row: dict) -> str:
    c = row["clips"]
    pct = lambda v: "  -  " if v is None or v != v else f"{100 * v:5.1f}"  # noqa: E731
    own = "  ".join(f"{name} {pct(s['hit_rate'])}/{s['false_alarms']}" for name, s in row["own_thresholds"].items())
    latency = next(iter(row["own_thresholds"].values()))["latency_median_s"]
    one = row["one_threshold"]
    hits = "  ".join(f"{name} {pct(v)}" for name, v in one["hit_rate"].items())
    return (f"{row['model']}\n  clips: official {pct(c['official_accuracy'])} (bal {pct(c['official_balanced'])}), "
            f"all {pct(c['accuracy'])} (bal {pct(c['balanced'])})\n  own thresholds (hits %/false alarms): {own}; "
            f"median latency {1000 * latency:.0f} ms\n"
            f"  one threshold {one['level']:.3f} (<= {one['fa_per_hour_limit']:g} FA/h on negatives): {hits}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kws_train.compare", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="BUNDLE")
    parser.add_argument("--data", required=True, help="Speech Commands root")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--commands", action="append", required=True, metavar="WAV",
                        help="a commands stream (repeat); the first one's thresholds are the bundle's")
    parser.add_argument("--negative", action="append", default=[], metavar="WAV",
                        help="a stream of negative audio (repeat)")
    parser.add_argument("--fa-per-hour", type=float, default=10.0)
    parser.add_argument("--config", help="config laid over the defaults (e.g. another detector.hop_ms)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for model in args.models:
        rows.append(compare(model, args.data, args.split, args.commands, args.negative, args.fa_per_hour,
                            args.config))
        print(line(rows[-1]), flush=True)
    if args.json:
        write_text(args.json, to_json(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
