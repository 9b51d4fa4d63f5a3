"""``kws eval-stream``: replay a labelled stream through the detector and score it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from kws.cli import add_model_argument, json_line
from kws.cli import add_detector_arguments, detector_setup
from kws.config import Config

HELP = "score detections on a labelled stream (hits, false alarms/hour, latency, threshold table)"
# Denser at the top, where a good model trades its last false alarms for misses.
LEVELS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wav", required=True, metavar="LONG.wav", help="stream (kws make-stream)")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help="its labels")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", metavar="PNG",
                        help="trade-off curve to write (default: LONG.tradeoff.png beside the WAV)")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.eval.scoring import record_stream, score, sweep
    from kws.eval.testaudio import read_labels

    config, bundle = detector_setup(args, config)
    labels = read_labels(args.labels)
    rec = record_stream(bundle, config, args.wav, progress=True)
    duration = rec.duration
    tolerance = config.stream.tolerance_ms / 1000
    result = score(rec.detections, labels, bundle.words, duration, tolerance)
    table = sweep(rec.times, rec.scores, bundle.labels, bundle.words, LEVELS,
                  config.posterior.refractory_ms / 1000, labels, duration, tolerance)
    plot = Path(args.plot) if args.plot else Path(args.wav).with_suffix(".tradeoff.png")
    write_plot(plot, table, result, f"{bundle.path.name}, hop {config.detector.hop_ms:g} ms")
    report = {**result.summary(), "duration_s": duration, "hop_ms": config.detector.hop_ms,
              "thresholds": rec.thresholds, "plot": str(plot),
              "table": [{"threshold": level, "miss_rate": s.miss_rate, "fa_per_hour": s.fa_per_hour,
                         "false_alarms": s.false_alarms} for level, s in table]}
    print(json_line(report) if args.json else format_report(report))
    return 0


def format_report(r: dict) -> str:
    ms = lambda s: "-" if math.isnan(s) else f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [f"{r['commands']} command words in {r['duration_s'] / 60:.1f} min "
             f"(hop {r['hop_ms']:g} ms)",
             f"  hits          {r['hits']:5d}  ({r['hit_rate']:.1%})",
             f"  misses        {r['misses']:5d}",
             f"  wrong word    {r['wrong']:5d}",
             f"  false alarms  {r['false_alarms']:5d}  ({r['fa_per_hour']:.2f} per hour of "
             f"non-command audio, {r['non_command_hours'] * 60:.1f} min)",
             f"  latency after end of word: median {ms(r['latency_median_s'])}, "
             f"p95 {ms(r['latency_p95_s'])}",
             "  hits per word: " + ", ".join(f"{w} {c['hits']}/{c['commands']}"
                                             for w, c in r["per_word"].items()),
             "",
             "threshold (all words)  miss rate  false alarms/hour",
             *(f"  {row['threshold']:>19g}  {row['miss_rate']:9.1%}  {row['fa_per_hour']:17.2f}"
               for row in r["table"]),
             f"trade-off curve: {r['plot']}"]
    return "\n".join(lines)


def write_plot(path: Path, table: list, configured, title: str) -> None:
    """False alarms per hour against miss rate, one point per threshold, and the configured one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    fa = [s.fa_per_hour for _, s in table]
    miss = [100 * s.miss_rate for _, s in table]
    ax.plot(fa, miss, "o-", label="one threshold for all words")
    for (level, _), x, y in zip(table, fa, miss):
        ax.annotate(f"{level:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.plot([configured.fa_per_hour], [100 * configured.miss_rate], "r*", markersize=12,
            label="configured thresholds")
    ax.set_xlabel("false alarms per hour (non-command audio)")
    ax.set_ylabel("miss rate (%)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
