"""``kws eval-stream``: replay labelled streams through the detector and score them.

Several streams score as one (``--wav`` repeated): a commands stream gives hits, misses and
latency, negative streams (running speech, other words, noise) add hours of audio on which
every detection is a false alarm. Besides the totals and a line per stream, it prints the
trade-off with one threshold for every word, and draws each word's own trade-off (miss rate
against false alarms per hour, a DET curve) the way wake-word benchmarks report them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from kws.cli import add_model_argument, json_line
from kws.cli import add_detector_arguments, detector_setup
from kws.config import Config
from kws.errors import KwsError
from kws.writes import check_target, check_unnamed, staged

HELP = "score detections on labelled streams (hits, false alarms/hour, latency, DET curves)"
# Denser at the top, where a good model trades its last false alarms for misses.
LEVELS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999,
          0.9995, 0.9999]
WORD_LEVELS = [round(0.3 + 0.01 * i, 2) for i in range(66)] + [0.97, 0.98, 0.99, 0.995, 0.999,
                                                               0.9995, 0.9998, 0.9999]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wav", required=True, action="append", metavar="LONG.wav",
                        help="stream from kws make-stream; repeat to score several as one")
    parser.add_argument("--labels", action="append", metavar="LABELS.csv",
                        help="labels of each --wav, in order (default: the .csv beside each WAV)")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", metavar="PNG",
                        help="trade-off curves to write (default: FIRST.tradeoff.png beside the "
                             "first WAV; FIRST.det.png gets the per-word curves)")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.eval.scoring import Score, record_stream, score, sweep
    from kws.eval.testaudio import labels_path, read_labels

    if args.labels and len(args.labels) != len(args.wav):
        raise KwsError(f"{len(args.labels)} --labels for {len(args.wav)} --wav: give one per stream "
                       "or none (the .csv beside each WAV)")
    from kws.eval.reports import is_kws_png

    if args.plot:
        plot = check_target(args.plot, "--plot")
    else:
        plot = check_unnamed(Path(args.wav[0]).with_suffix(".tradeoff.png"), "plot", is_kws_png,
                             "name another with --plot")
    det_plot = check_unnamed(plot.with_name(plot.name.removesuffix(".tradeoff.png").removesuffix(".png") + ".det.png"),
                             "per-word plot", is_kws_png, "it goes beside --plot: name another --plot")
    config, bundle = detector_setup(args, config)
    labels = [read_labels(labels_path(wav, given))
              for wav, given in zip(args.wav, args.labels or [None] * len(args.wav))]
    recordings = [record_stream(bundle, config, wav, lab, progress=True)
                  for wav, lab in zip(args.wav, labels)]
    refractory, tolerance = config.posterior.refractory_ms / 1000, config.stream.tolerance_ms / 1000
    scores = [score(rec.detections, rec.labels, bundle.words, rec.duration, tolerance)
              for rec in recordings]
    result = Score.total(scores)
    table = sweep(recordings, bundle.labels, bundle.words, LEVELS, refractory, tolerance)
    det = {word: sweep(recordings, bundle.labels, [word], WORD_LEVELS, refractory, tolerance)
           for word in bundle.words}
    title = f"{bundle.path.name}, hop {config.detector.hop_ms:g} ms"
    write_plot(plot, table, result, title)
    write_det_plot(det_plot, det, recordings[0].thresholds, title)
    report = {**result.summary(), "duration_s": sum(rec.duration for rec in recordings),
              "hop_ms": config.detector.hop_ms, "thresholds": recordings[0].thresholds,
              "plot": str(plot), "det_plot": str(det_plot),
              "streams": [{"wav": str(wav), "duration_s": rec.duration, **one.summary()}
                          for wav, rec, one in zip(args.wav, recordings, scores)],
              "table": [{"threshold": level, "miss_rate": s.miss_rate, "fa_per_hour": s.fa_per_hour,
                         "false_alarms": s.false_alarms} for level, s in table],
              "det": {word: [{"threshold": level, "miss_rate": s.miss_rate,
                              "fa_per_hour": s.fa_per_hour} for level, s in rows]
                      for word, rows in det.items()}}
    print(json_line(report) if args.json else format_report(report))
    return 0


def format_report(r: dict) -> str:
    ms = lambda s: "-" if s is None or math.isnan(s) else f"{s * 1000:.0f} ms"  # noqa: E731
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
                                             for w, c in r["per_word"].items())]
    if len(r["streams"]) > 1:
        lines += ["", "per stream:"]
        for s in r["streams"]:
            hits = f"{s['hits']}/{s['commands']} hits, " if s["commands"] else ""
            lines.append(f"  {s['wav']}: {s['duration_s'] / 60:.1f} min, {hits}"
                         f"{s['false_alarms']} false alarms ({s['fa_per_hour']:.1f} per hour)")
    lines += ["",
              "threshold (all words)  miss rate  false alarms/hour",
              *(f"  {row['threshold']:>19g}  {row['miss_rate']:9.1%}  {row['fa_per_hour']:17.2f}"
                for row in r["table"]),
              f"trade-off curve: {r['plot']}", f"per-word DET curves: {r['det_plot']}"]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plot(path: Path, table: list, configured, title: str) -> None:
    """False alarms per hour against miss rate, one point per threshold, and the configured one."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    fa = [s.fa_per_hour for _, s in table]
    miss = [100 * s.miss_rate for _, s in table]
    ax.plot(fa, miss, "o-", label="one threshold for all words")
    for (level, _), x, y in zip(table, fa, miss):
        ax.annotate(f"{level:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.plot([configured.fa_per_hour], [100 * configured.miss_rate], "r*", markersize=12,
            label="configured thresholds")
    _axes(ax, title)
    ax.legend()
    _save(fig, path)


def write_det_plot(path: Path, det: dict, thresholds: dict, title: str) -> None:
    """One DET curve per word (its own threshold swept), its configured threshold starred."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for word, rows in det.items():
        fa = [s.fa_per_hour for _, s in rows]
        miss = [100 * s.miss_rate for _, s in rows]
        line, = ax.plot(fa, miss, "-", label=word)
        if word in thresholds:
            at = min(range(len(rows)), key=lambda i: abs(rows[i][0] - thresholds[word]))
            ax.plot([fa[at]], [miss[at]], "*", color=line.get_color(), markersize=10)
    _axes(ax, f"{title}: each word's trade-off (* its threshold)")
    ax.legend(ncol=2, fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    from kws.eval.reports import save_png

    fig.tight_layout()
    with staged(path) as staging:
        save_png(fig, staging, 100)


def _axes(ax, title: str) -> None:
    ax.set_xlabel("false alarms per hour (non-command audio)")
    ax.set_ylabel("miss rate (%)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
