"""``kws eval``: score a bundle's LiteRT model on labelled clips (no TensorFlow needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws.bundle import load_bundle
from kws.cli import add_model_argument, json_line, model_overrides
from kws.config import Config, with_overrides
from kws.resources import find_model
from kws.writes import check_target, check_unnamed, staged_together, to_json

HELP = "score a model bundle on labelled clips: accuracy, per-class precision/recall, confusion"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", required=True,
                        help="Speech Commands root (uses its split lists) or a test-set archive "
                             "(one folder per label; every clip is used)")
    parser.add_argument("--split", default="testing", choices=["training", "validation", "testing"],
                        help="split of a dataset root (default: testing)")
    add_model_argument(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--int8", action="store_true", dest="int8", default=None,
                       help="score the bundle's int8 model")
    which.add_argument("--float", action="store_false", dest="int8",
                       help="score the bundle's float model (default: the one kws listen runs, "
                            "int8 when detector.int8 and the bundle has it)")
    parser.add_argument("--report", metavar="DIR", default="runs/eval",
                        help="where confusion.png and metrics.json go (default: runs/eval)")
    parser.add_argument("--json", action="store_true",
                        help="end with the metrics as one JSON line on stdout")


def is_metrics(path: Path) -> bool:
    """Whether ``path`` is a ``metrics.json`` kws eval wrote (its keys)."""
    import json

    try:
        metrics = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and {"accuracy", "labels", "confusion", "model"} <= set(metrics)


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.eval.clips import evaluate_bundle, evaluation_audio
    from kws.eval.metrics import table
    from kws.eval.reports import plot_confusion

    from kws.eval.reports import is_kws_png

    # Before the long part: the folder, and its two files (kws's own earlier ones, or none).
    report = check_target(args.report, "--report", directory=True)
    instead = f"kws eval writes its report there: choose another --report than {report}"
    check_unnamed(report / "metrics.json", "metrics", is_metrics, instead)
    check_unnamed(report / "confusion.png", "confusion matrix", is_kws_png, instead)
    config = with_overrides(config, model_overrides(args))
    bundle = load_bundle(find_model(config.model_path), config)
    # The model the runtime runs (kws.detector.Detector.from_bundle), unless --float/--int8.
    int8 = config.detector.int8 and bundle.has_int8 if args.int8 is None else args.int8
    print(f"model: {bundle.path} ({'int8' if int8 else 'float'})")
    config = with_overrides(config, {"words": bundle.words})
    data = evaluation_audio(args.data, args.split, config)
    for note in data.summary["notes"]:
        print(f"note: {note}")
    if data.summary["skipped"]:
        print(f"note: skipped {data.summary['skipped']} unreadable clips, e.g. "
              f"{data.summary['skipped_examples'][0]}")
    metrics = evaluate_bundle(bundle, data, int8=int8)
    print(table(metrics))
    if "official_test_speakers" in metrics:
        official = metrics["official_test_speakers"]
        print(f"\nofficial test speakers only (the harder yardstick): accuracy "
              f"{100 * official['accuracy']:.2f}%  balanced accuracy "
              f"{100 * official['balanced_accuracy']:.2f}%  ({official['n']} clips)")
        print("  recall: " + "  ".join(f"{label} {100 * c['recall']:.0f}"
                                       for label, c in official["per_class"].items() if c["recall"] is not None))
    with staged_together([report / "confusion.png", report / "metrics.json"]) as (png, json_file):
        plot_confusion(metrics, png)
        json_file.write_text(to_json(metrics, indent=1) + "\n")
    print(f"confusion matrix: {report / 'confusion.png'}")
    if args.json:
        print(json_line(metrics))
    return 0
