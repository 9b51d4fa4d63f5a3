"""Measure the two-stage decision: first stage (the detector) alone vs first stage + verifier.

For each labelled stream (``kws make-stream`` output) the first stage is replayed once
(``kws.eval.scoring.record_stream``; cached), then:

- first stage alone: one threshold for every word, swept finely, and the bundle's own
  per-word thresholds;
- two stages: the first stage's detections at a low candidate threshold (``--candidates``,
  every word) are each verified on the 1.5 s of audio ending at the detection (plus
  ``--delay`` seconds, if given: waiting costs latency but lets the verifier hear the end of
  the word and the pause after it) and kept when the verifier's P(word) reaches tau.

Rows compare the two at equal hits: for each two-stage point, the fewest false alarms per
hour the first stage alone makes with at least as many hits. Also prints the verifier's CPU
cost per verification and per hour of audio at the measured candidate rates.

    python -m kws_train.verifier_eval --model models/default --verifier runs/verifier/default \\
        --wav runs/streams/commands_validation.wav --wav runs/streams/speech_validation.wav \\
        --wav runs/streams/other_validation.wav --cache runs/verifier_cache --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio
from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.eval.scoring import Recording, Score, record_stream, replay_trigger, score
from kws.eval.testaudio import labels_path, read_labels
from kws.verifier import SAMPLE_RATE, Verifier

LEVELS = [round(0.3 + 0.01 * i, 2) for i in range(66)] + [0.965, 0.97, 0.975, 0.98, 0.985, 0.99, 0.993,
                                                           0.995, 0.997, 0.998, 0.999, 1.0]
TAUS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def log(msg: str) -> None:
    print(f"verifier-eval: {msg}", file=sys.stderr, flush=True)


def recording(bundle, config, wav: str, cache: Path | None) -> Recording:
    """``record_stream``, cached on disk by bundle, stream and config."""
    labels = read_labels(labels_path(wav))
    key = hashlib.sha1(json.dumps([str(bundle.path.resolve()), str(Path(wav).resolve()),
                                   Path(wav).stat().st_size, config.model_dump(mode="json")],
                                  sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache / f"rec-{Path(wav).stem}-{key}.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path)
        return Recording(z["times"], z["scores"], [], float(z["duration"]), {}, labels)
    t0 = time.perf_counter()
    rec = record_stream(bundle, config, wav, labels)
    log(f"{wav}: replayed {rec.duration / 60:.1f} min in {time.perf_counter() - t0:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, times=rec.times, scores=rec.scores, duration=rec.duration)
    return rec


def uniform(classes: list[str], words: list[str], level: float) -> np.ndarray:
    return np.array([level if c in words else math.inf for c in classes])


def equal_hits_fa(alone: list[tuple[float, Score]], hits: int) -> tuple[float, float]:
    """(fewest FA/h, its threshold) of the first stage alone with at least ``hits`` hits."""
    ok = [(s.fa_per_hour, level) for level, s in alone if s.hits >= hits]
    return min(ok) if ok else (math.nan, math.nan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kws_train.verifier_eval",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="first-stage bundle")
    parser.add_argument("--verifier", action="append", help="folder holding verifier.npz (default: --model); "
                        "repeat to compare heads")
    parser.add_argument("--rules", nargs="+", default=["verifier", "mean"], choices=["verifier", "mean"],
                        help="keep a candidate when P(word) >= tau, or the mean of P(word) and the first "
                        "stage's smoothed score >= tau")
    parser.add_argument("--wav", action="append", required=True)
    parser.add_argument("--candidates", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--delay", type=float, nargs="+", default=[0.0])
    parser.add_argument("--taus", type=float, nargs="+", default=TAUS)
    parser.add_argument("--cache")
    parser.add_argument("--json")
    parser.add_argument("--config")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    bundle = load_bundle(args.model, config)
    config = with_overrides(config, {"words": bundle.words})
    names = args.verifier or [args.model]
    verifiers = [Verifier.load(name) for name in names]
    if any(v is None for v in verifiers):
        log("no verifier (no verifier.npz in a bundle, or the embedding models are not installed)")
        return 2
    cache = Path(args.cache) if args.cache else None
    classes, words = bundle.labels, bundle.words
    refractory, tol = config.posterior.refractory_ms / 1000, config.stream.tolerance_ms / 1000
    recs = [recording(bundle, config, wav, cache) for wav in args.wav]
    hours = sum(r.duration for r in recs) / 3600

    def total(detections_per_stream) -> Score:
        return Score.total([score(d, r.labels, words, r.duration, tol)
                            for d, r in zip(detections_per_stream, recs)])

    def decide(levels) -> list[list[tuple[float, str]]]:
        return [replay_trigger(r.times, r.scores, classes, levels, refractory) for r in recs]

    alone = [(level, total(decide(uniform(classes, words, level)))) for level in LEVELS]
    tuned = np.array([bundle.thresholds.get(c, math.inf) if c in words else math.inf for c in classes])
    alone_tuned = total(decide(tuned))

    # Embed every candidate's window once per delay (cached), then score it with each head.
    audios = [read_audio(wav, SAMPLE_RATE) for wav in args.wav]
    first = verifiers[0]
    n = first.window_samples
    cands = {c: decide(uniform(classes, words, c)) for c in args.candidates}
    keys = sorted({(s, round(t, 4), delay) for per in cands.values() for s, found in enumerate(per)
                   for t, _ in found for delay in args.delay})

    def window(key) -> np.ndarray:
        s, t, delay = key
        end = min(len(audios[s]), round((t + delay) * SAMPLE_RATE))
        return first.fit_window(audios[s][max(0, end - n):end])

    tag = hashlib.sha1(json.dumps([args.wav, keys, n]).encode()).hexdigest()[:12]
    path = cache / f"cand-{tag}.npy" if cache else None
    if path is not None and path.is_file():
        emb = np.load(path)
    else:
        t0 = time.perf_counter()
        emb = np.stack([first.embedding(window(k)) for k in keys]) if keys else np.zeros((0, 9, 96))
        log(f"{len(keys)} candidate windows embedded in {time.perf_counter() - t0:.0f} s")
        if path is not None:
            np.save(path, emb)
    row_of = {k: i for i, k in enumerate(keys)}
    # Cost of one whole verification (front end + head), one window at a time as at run time.
    timings = []
    for k in keys[:150]:
        w = window(k)
        t0 = time.perf_counter()
        first.confirm(w, "yes")
        timings.append(time.perf_counter() - t0)
    ms = 1000 * np.array(timings)
    cand_rate = {c: sum(len(f) for f in per) / hours for c, per in cands.items()}
    per_stream_rate = {c: {Path(w).stem: len(f) / (r.duration / 3600) for w, f, r in zip(args.wav, per, recs)}
                       for c, per in cands.items()}

    def first_score(s: int, t: float, word: str) -> float:
        r = recs[s]
        i = min(int(np.searchsorted(r.times, t - 1e-6)), len(r.times) - 1)
        return float(r.scores[i, classes.index(word)])

    rows = []
    for name, v in zip(names, verifiers):
        probs = v.head.probabilities(emb) if len(emb) else np.zeros((0, len(v.head.labels)))
        for c, per_stream in cands.items():
            for delay in args.delay:
                for rule in args.rules:
                    for tau in args.taus:
                        kept = []
                        for s, found in enumerate(per_stream):
                            keep = []
                            for t, w in found:
                                p = float(probs[row_of[(s, round(t, 4), delay)], v.head.labels.index(w)])
                                value = p if rule == "verifier" else (p + first_score(s, t, w)) / 2
                                if value >= tau:
                                    keep.append((t, w))
                            kept.append(keep)
                        two = total(kept)
                        fa1, level1 = equal_hits_fa(alone, two.hits)
                        rows.append({"verifier": name, "candidate": c, "delay_s": delay, "rule": rule,
                                     "tau": tau, "hits": two.hits, "commands": two.commands,
                                     "hit_rate": two.hit_rate, "false_alarms": two.false_alarms,
                                     "fa_per_hour": two.fa_per_hour,
                                     "latency_median_s": two.latency(0.5) + delay,
                                     "per_stream_fa": [score(k, r.labels, words, r.duration, tol).false_alarms
                                                       for k, r in zip(kept, recs)],
                                     "alone_fa_per_hour_at_equal_hits": fa1, "alone_threshold": level1})
    report = {
        "model": str(bundle.path), "verifier": names, "streams": args.wav,
        "hours": hours, "non_command_hours": alone[0][1].non_command_hours,
        "alone_uniform": [{"threshold": lv, "hits": s.hits, "hit_rate": s.hit_rate,
                           "false_alarms": s.false_alarms, "fa_per_hour": s.fa_per_hour,
                           "latency_median_s": s.latency(0.5)} for lv, s in alone],
        "alone_tuned": {"thresholds": bundle.thresholds, "hits": alone_tuned.hits,
                        "hit_rate": alone_tuned.hit_rate, "fa_per_hour": alone_tuned.fa_per_hour,
                        "false_alarms": alone_tuned.false_alarms,
                        "equal_hits_rows": None},
        "verification_ms": {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)),
                            "mean": float(ms.mean()), "count": len(ms)},
        "candidates_per_hour": cand_rate, "candidates_per_hour_per_stream": per_stream_rate,
        "rows": rows}
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


def format_report(r: dict) -> str:
    lines = [f"first stage {r['model']}, verifier {r['verifier']}: {r['hours'] * 60:.1f} min "
             f"({r['non_command_hours'] * 60:.1f} min non-command)"]
    t = r["alone_tuned"]
    lines.append(f"first stage alone, bundle thresholds: {t['hits']} hits ({t['hit_rate']:.1%}), "
                 f"{t['fa_per_hour']:.1f} FA/h")
    lines.append("first stage alone, one threshold:")
    for a in r["alone_uniform"][::5]:
        lines.append(f"  {a['threshold']:6.3f}  hits {a['hits']:4d} ({a['hit_rate']:.1%})  "
                     f"FA/h {a['fa_per_hour']:7.1f}")
    v = r["verification_ms"]
    lines.append(f"verification: median {v['median']:.1f} ms, p95 {v['p95']:.1f} ms ({v['count']} runs)")
    for c, rate in r["candidates_per_hour"].items():
        cpu = rate * v["median"] / 1000
        lines.append(f"candidates at {c}: {rate:.0f}/h over all streams "
                     f"({', '.join(f'{k} {x:.0f}/h' for k, x in r['candidates_per_hour_per_stream'][c].items())}); "
                     f"verifier CPU {cpu:.1f} s per hour of audio")
    lines.append("verifier/rule: cand  delay   tau   hits   hit%   FA/h (FAs per stream) "
                 "| alone at >= hits: FA/h (thr)")
    for row in r["rows"]:
        lines.append(f"{Path(row['verifier']).name}/{row['rule']}: {row['candidate']:4.2f}  {row['delay_s']:5.2f}  "
                     f"{row['tau']:4.2f}  {row['hits']:5d}  "
                     f"{row['hit_rate']:5.1%}  {row['fa_per_hour']:6.1f} {str(row['per_stream_fa']):>14}  | "
                     f"{row['alone_fa_per_hour_at_equal_hits']:7.1f} ({row['alone_threshold']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
