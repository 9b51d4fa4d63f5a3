"""``kws bench``: per-hop latency, real-time factor, detection latency, start-up and memory,
ours against the tutorials' naive loop, measured in one run on one CPU thread; with
``--peers``, CPU per second of audio against microWakeWord and openWakeWord (``kws.eval.peers``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kws.cli import add_model_argument, json_line, model_overrides
from kws.config import Config, with_overrides
from kws.resources import install_hint
from kws.writes import check_target, staged

HELP = "benchmark streaming latency and cost against a naive librosa + Keras baseline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--hops", default="10,20,50,100", metavar="MS,MS,...",
                        help="hop sizes to time, in ms (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="audio replayed for the real-time factor (default: %(default)s)")
    parser.add_argument("--wav", metavar="LONG.wav",
                        help="labelled stream from `kws make-stream`: timed audio, and detection latency")
    parser.add_argument("--labels", metavar="LABELS.csv", help="its labels (with --wav)")
    parser.add_argument("--live-seconds", type=float, default=10.0,
                        help="seconds of real-time listening for the CPU share (default: %(default)s)")
    parser.add_argument("--naive-hops", type=int, default=200,
                        help="hops the naive baseline is timed over (default: %(default)s)")
    parser.add_argument("--startup-runs", type=int, default=3,
                        help="process starts timed, the median is reported (default: %(default)s)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the naive baseline (it needs TensorFlow and librosa)")
    parser.add_argument("--peers", action="store_true",
                        help="also time microWakeWord and openWakeWord, where installed, on the same audio "
                             f"({install_hint('peers')})")
    parser.add_argument("--peer-seconds", type=float, default=120.0,
                        help="audio for the --peers comparison, in seconds (default: %(default)s)")
    parser.add_argument("--plot", metavar="PNG", help="write a per-hop latency histogram there")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.eval import bench
    from kws.audio.files import read_audio
    from kws.bundle import load_bundle
    from kws.errors import KwsError
    from kws.eval.testaudio import read_labels

    try:
        hops = [float(h) for h in args.hops.split(",")]
    except ValueError:
        raise KwsError(f"--hops: expected comma-separated milliseconds, got {args.hops!r}") from None
    if bool(args.wav) != bool(args.labels):
        raise KwsError("--wav and --labels go together")
    for name in ("minutes", "live_seconds"):
        value = getattr(args, name)
        if not 0 < value <= 24 * 60:  # NaN fails too
            raise KwsError(f"--{name.replace('_', '-')} must be positive (and at most a day), got {value:g}")
    for name in ("naive_hops", "startup_runs"):
        if getattr(args, name) < 1:
            raise KwsError(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.peer_seconds <= 24 * 3600:  # NaN fails too
        raise KwsError(f"--peer-seconds must be at least 1 (and at most a day), got {args.peer_seconds:g}")
    if args.plot:
        check_target(args.plot, "--plot")
    if not args.no_baseline:
        missing = bench.baseline_missing()
        if missing:  # say so now, not after minutes of measuring
            raise KwsError(f"the naive baseline needs TensorFlow and librosa ({missing} missing): "
                           f"{install_hint('train')}, or pass --no-baseline")
    cpu = bench.pin_to_one_core()
    if args.peers:  # after pinning: finding them loads their runtimes, whose threads must be pinned too
        from kws.eval import peers

        peer_systems, peers_missing = peers.find_peers()
        if not peer_systems:
            raise KwsError("--peers: neither microWakeWord nor openWakeWord is installed: "
                           f"{peers.MWW_INSTALL}")
    config = with_overrides(config, model_overrides(args))
    bundle = load_bundle(config.model_path, config)
    rate = config.audio.sample_rate
    labels = None
    if args.wav:
        audio = read_audio(args.wav, rate)
        labels = read_labels(args.labels)
    else:
        # The path's cost does not depend on what is said; speech-level noise stands in.
        audio = (0.05 * np.random.default_rng(0).standard_normal(60 * rate)).astype(np.float32)
    long_audio = np.resize(audio, int(args.minutes * 60 * rate))

    results: dict = {"model": str(bundle.path), "arch": bundle.metadata.get("arch"), "cpu": cpu,
                     "default_hop_ms": config.detector.hop_ms}
    _progress("per-hop timing")
    results["hops"] = [bench.measure_hops(bundle, config, audio[:60 * rate], h) for h in hops]
    _progress(f"real-time factor over {args.minutes:g} min")
    results["rtf"] = bench.measure_real_time_factor(bundle, config, long_audio)
    _progress(f"live CPU share over {args.live_seconds:g} s")
    results["live"] = bench.measure_live_cpu(bundle, config, audio[:int(args.live_seconds * rate)])
    if labels is not None:
        _progress("detection latency")
        results["detection"] = bench.measure_detection_latency(bundle, config, args.wav, labels)
    _progress("start-up")
    results["startup"] = bench.measure_startup(bundle.path, args.config, args.startup_runs)
    if not args.no_baseline:
        _progress("naive baseline")
        try:
            baseline = bench.NaiveBaseline(bundle, config)
        except ImportError as err:
            raise KwsError(f"the naive baseline needs TensorFlow and librosa ({err.name} missing): "
                           f"{install_hint('train')}, or pass --no-baseline") from None
        results["naive"] = bench.measure_naive(baseline, audio, config.detector.hop_ms, args.naive_hops)
        results["naive_startup"] = bench.naive_startup(bundle.path, args.startup_runs)
    if args.peers:
        _progress(f"peers over {args.peer_seconds:g} s")
        results["peers"] = peers.compare([*peers.kws_systems(bundle, config), *peer_systems],
                                         np.resize(audio, int(args.peer_seconds * rate)))
        results["peers"]["missing"] = peers_missing
    results["ratios"] = _ratios(results)

    totals = {f"ours, hop {h['hop_ms']:g} ms": h.pop("_totals") for h in results["hops"]}
    if "naive" in results:
        totals[f"naive, hop {results['naive']['hop_ms']:g} ms"] = results["naive"].pop("_totals")
    if args.plot:
        _plot(Path(args.plot), totals)
        results["plot"] = args.plot
    print(json_line(results) if args.json else format_report(results))
    return 0


def _default_hop(results: dict) -> dict:
    return next((h for h in results["hops"] if h["hop_ms"] == results["default_hop_ms"]),
                results["hops"][0])


def _ratios(results: dict) -> dict:
    """How many times faster / smaller ours is than the naive baseline."""
    if "naive" not in results:
        return {}
    ours, naive = _default_hop(results)["total"], results["naive"]["total"]
    naive_rtf = naive["mean"] / results["naive"]["hop_ms"]
    return {"per_hop_p50": naive["p50"] / ours["p50"], "per_hop_p99": naive["p99"] / ours["p99"],
            "real_time_factor": naive_rtf / results["rtf"]["rtf"],
            "startup": results["naive_startup"]["seconds"] / results["startup"]["seconds"],
            "peak_rss": results["naive_startup"]["peak_rss_mb"] / results["startup"]["peak_rss_mb"]}


def format_report(r: dict) -> str:
    lines = [f"kws bench: {r['model']} ({r['arch']}), pinned to CPU {r['cpu']}, one thread", "",
             "Per-hop latency, ms        p50     p95     p99     max",
             ]
    for h in r["hops"]:
        for stage in ("features", "classifier", "posterior", "total"):
            s = h[stage]
            lines.append(f"  hop {h['hop_ms']:>4g} {stage:<11} {s['p50']:7.3f} {s['p95']:7.3f} "
                         f"{s['p99']:7.3f} {s['max']:7.3f}")
    if "naive" in r:
        n = r["naive"]
        for stage in ("features", "classifier", "total"):
            s = n[stage]
            lines.append(f"  naive {n['hop_ms']:>3g} {stage:<11} {s['p50']:7.3f} {s['p95']:7.3f} "
                         f"{s['p99']:7.3f} {s['max']:7.3f}")
    rtf, live, start = r["rtf"], r["live"], r["startup"]
    lines += ["", f"Real-time factor  {rtf['rtf']:.5f} CPU s per audio s over {rtf['audio_s'] / 60:g} min "
                  f"({rtf['speed_x']:.0f}x faster than real time)",
              f"Live CPU share    {100 * live['cpu_share']:.2f}% of one core "
              f"({live['lost_samples']} samples lost)",
              f"Start-up          {start['seconds']:.3f} s (whole `kws replay` of a 1-s file)",
              f"Peak RSS          {start['peak_rss_mb']:.0f} MB"]
    if "detection" in r:
        d = r["detection"]
        lines.append(f"Detection latency median {1000 * d['latency_median_s']:.0f} ms, "
                     f"p95 {1000 * d['latency_p95_s']:.0f} ms after the end of the word "
                     f"({d['hits']}/{d['commands']} hits)")
    if r["ratios"]:
        q = r["ratios"]
        n = r["naive_startup"]
        lines += ["", f"Against the naive baseline (librosa + Keras predict, hop {r['naive']['hop_ms']:g} ms):",
                  f"  per-hop p50       {q['per_hop_p50']:8.1f}x faster",
                  f"  per-hop p99       {q['per_hop_p99']:8.1f}x faster",
                  f"  real-time factor  {q['real_time_factor']:8.1f}x less CPU",
                  f"  start-up          {q['startup']:8.1f}x faster ({n['seconds']:.2f} s)",
                  f"  peak RSS          {q['peak_rss']:8.1f}x smaller ({n['peak_rss_mb']:.0f} MB)"]
    if "peers" in r:
        lines += ["", *_peers_table(r["peers"])]
    if "plot" in r:
        lines.append(f"\nHistogram: {r['plot']}")
    return "\n".join(lines)


def _peers_table(p: dict) -> list[str]:
    rows = p["systems"]
    name = max(len(s["name"]) for s in rows)
    hop = max(len(s["per_hop"]) for s in rows)
    lines = ["Against other wake-word engines: CPU ms per second of audio, in all and per word listened for",
             f"({p['audio_s']:g} s of audio, median of {p['rounds']} interleaved rounds)",
             f"  {'system':<{name}}  {'words':>5}  {'per hop':<{hop}}  {'CPU ms/s':>8}  "
             f"{'per word':>8}  {'ratio to kws':>12}"]
    lines += [f"  {s['name']:<{name}}  {s['words']:>5}  {s['per_hop']:<{hop}}  {s['cpu_ms_per_s']:>8.2f}  "
              f"{s['cpu_ms_per_word_s']:>8.2f}  {s['ratio']:>12.2f}" for s in rows]
    lines += [f"  {source}" for source in dict.fromkeys(s["source"] for s in rows if s["source"])]
    lines += [f"  {peer}: not measured, {why}" for peer, why in p["missing"].items()]
    return lines


def _plot(path: Path, totals: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    every = np.concatenate([np.asarray(v) for v in totals.values()]) * 1000
    bins = np.geomspace(max(every.min(), 1e-3), every.max() * 1.01, 60)
    for name, values in totals.items():
        ax.hist(np.asarray(values) * 1000, bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("time per hop, ms (log scale)")
    ax.set_ylabel("hops")
    ax.set_title("kws bench: per-hop latency on one CPU thread")
    ax.legend()
    fig.tight_layout()
    from kws.eval.reports import save_png

    with staged(path) as staging:
        save_png(fig, staging, 120)


def _progress(stage: str) -> None:
    """Stage names on stderr: a long run shows where it is, and --json stdout stays clean."""
    print(f"kws bench: {stage}...", file=sys.stderr, flush=True)
