"""What an enrollment says about itself: the metadata it leaves in the bundle, and the report
(``enroll_report.json`` and ``enroll_report.txt`` in the bundle, the text on stdout).

The report names every held-apart voice and stream, so a reader can tell figures that chose
something (validation) from figures nothing chose on (testing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.writes import to_json
from kws_train.enroll.job import Job
from kws_train.enroll.model import Base
from kws_train.enroll.voices import Others, Positives


def training_metadata(job: Job, base: Base, labels, losses: list[float], tune_epochs: int, mined: int,
                      recall: dict) -> dict:
    """The bundle's ``training`` block (the export adds the LiteRT check)."""
    return {"arch": "enrolled head on " + str(base.bundle.metadata.get("arch", "?")),
            "base": str(base.bundle.path), "budget": job.budget, "seed": job.seed,
            "parameters": int(base.model.full.count_params()),
            "head_parameters": int(base.model.head.count_params()),
            "epochs": job.plan.epochs, "tune_epochs": tune_epochs,
            "examples": {job.labels[i]: int(c) for i, c in enumerate(np.bincount(labels, minlength=len(job.labels)))},
            "mined_windows": mined,
            "final_loss": float(losses[-1]), "validation_clip_recall": recall}


def enroll_metadata(job: Job, positives: Positives, others: Others) -> dict:
    """The bundle's ``enroll`` block: what the words were learnt from."""
    bases: dict[str, list[str]] = {}
    for v in job.voices:
        if v.base not in bases.setdefault(v.engine, []):
            bases[v.engine].append(v.base)
    return {"words": job.words, "with_commands": job.with_commands, "engines": job.engines,
            "voices": len(job.voices), "base_voices": bases, "missing_voices": job.missing,
            "held_apart_voices": job.held,
            "clips_per_engine": positives.per_engine,
            "recordings": {w: len(r) for w, r in job.recordings.items()},
            "data": str(job.data) if job.data else None,
            "negatives": str(job.negatives) if job.negatives else None,
            "near_words": others.nears}


def per_voice(rec, detections, words, tolerance) -> dict:
    """Hits per source of the word clips in a stream (``synthetic:<speaker>``, a file...)."""
    out: dict[str, list[int]] = {}
    for lab in rec.labels:
        if lab.word in words:
            hit = any(w == lab.word and lab.start < t <= lab.end + tolerance for t, w in detections)
            counts = out.setdefault(lab.source.split(":")[-1], [0, 0])
            counts[0] += hit
            counts[1] += 1
    return {k: {"hits": h, "said": n} for k, (h, n) in sorted(out.items())}


def write_report(out: Path, report: dict) -> None:
    (out / "enroll_report.json").write_text(to_json(report, indent=1) + "\n")
    (out / "enroll_report.txt").write_text(format_report(report) + "\n")


def format_report(r: dict) -> str:
    lines = [f"enrolled {', '.join(r['words'])} -> {r['bundle']} in {r.get('seconds', 0):.0f} s "
             f"(budget {r['budget']}, engines {', '.join(r['engines'])})",
             "voices: " + voices_line(r["enroll"]),
             "thresholds: " + ", ".join(f"{w} {t:g}" for w, t in r["thresholds"].items())]
    if r.get("stage_seconds"):
        lines.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items()))
    hardest = r.get("hardest_negatives") or {}
    for w, rows in hardest.items():
        lines.append(f"closest negatives of {w!r} (set its threshold): "
                     + ", ".join(f"{x['text']} {x['score']:.3f}" for x in rows))
    held = r["enroll"]["held_apart_voices"]
    lines.append("held-apart voices: " + ", ".join(f"{s} ({v})" for s, v in sorted(held.items())))
    for title, block in (("testing (never used to choose anything)", r["testing"]),
                         ("validation (thresholds chosen here)", r["validation"])):
        lines.append(title + ":")
        for name, s in block.items():
            lines.append(f"  {name:12s} {s['minutes']:5.1f} min: {stream_line(s)}")
            if s.get("per_voice"):
                lines.append("    per voice: " + ", ".join(f"{v} {c['hits']}/{c['said']}"
                                                         for v, c in s["per_voice"].items()))
    lines.append("  (a 95% bound is the highest rate the stream cannot rule out: minutes of speech "
                 "bound nothing near 1 false alarm an hour)")
    return "\n".join(lines)


def voices_line(enroll: dict) -> str:
    """The base voices that spoke, per engine, and those missing."""
    used = "; ".join(f"{e} {', '.join(b)}" for e, b in enroll.get("base_voices", {}).items())
    missing = enroll.get("missing_voices") or {}
    return used + (f" (missing: {', '.join(missing)})" if missing else "")


def stream_line(s: dict) -> str:
    """Hits, false alarms, and what the false alarms can vouch for: per hour of non-word audio
    on running speech, per 124 phrases on other words (the held-out battery's count)."""
    from kws.eval.scoring import rate_upper_95

    hits = f"{s['hits']}/{s['commands']} hits ({s['hit_rate']:.0%}), " if s["commands"] else ""
    fa = f"{hits}{s['false_alarms']} false alarms"
    if s.get("other_words"):
        bound = rate_upper_95(s["false_alarms"], s["other_words"] / 124)
        return f"{fa} among {s['other_words']} other words ({bound:.1f} per 124 at most, 95%)"
    return f"{fa} ({s['fa_per_hour']:.1f} per hour of non-word audio, {s['fa_per_hour_upper_95']:.0f} at most, 95%)"


def summary_line(report: dict) -> str:
    t = report["testing"]
    parts = []
    if "voices" in t:
        parts.append(f"held-apart voices {t['voices']['hits']}/{t['voices']['commands']} hits")
    if "other people" in t:
        o = t["other people"]
        parts.append(f"{o['false_alarms']} false alarms among {o['other_words']} other words said by people")
    if "speech" in t:
        parts.append(f"{t['speech']['false_alarms']} false alarms in {t['speech']['minutes']:.1f} min "
                     "of held-apart speech")
    if "people" in t:
        parts.append(f"people in Speech Commands {t['people']['hits']}/{t['people']['commands']} hits")
    if "recordings" in t:
        parts.append(f"held-apart recordings {t['recordings']['hits']}/{t['recordings']['commands']} hits")
    missing = report["enroll"].get("missing_voices")
    if missing:
        parts.append(f"{len(missing)} voices missing (make voices)")
    return "; ".join(parts)
