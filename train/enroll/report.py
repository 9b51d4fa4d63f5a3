"""What an enrollment says about itself: the metadata it leaves in the bundle, and the report
(``enroll_report.json`` and ``enroll_report.txt`` in the bundle, the text on stdout).

The report names every held-apart voice and stream, so a reader can tell figures that chose
something (validation) from figures nothing chose on (testing); for each stream, how many real
people and minutes checked it, and each false-alarm figure's Poisson 95% bound. It warns, one
line each (``coverage_warnings``), where real audio of other people was missing or too thin to
vouch for much, and says what to pass; it names every take skipped or doubtful, and how many
trained and how many were held apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.writes import to_json
from kws_train.enroll.bank import Bank
from kws_train.enroll.job import Job
from kws_train.enroll.model import Base
from kws_train.enroll.voices import Others, Positives, split_recordings

# Below these a stream is thin: no false alarm in 15 minutes still allows 12 an hour, none among
# 100 clips 3.7 per 124 other phrases (the product's limit is 5). The shipped bank holds about
# 19 minutes and 800 clips of testing: enough to catch a trigger-happy word, and every report
# states the bound its streams allow.
THIN_MINUTES = 15
THIN_WORDS = 100


def training_metadata(job: Job, base: Base, labels, losses: list[float], tune_epochs: int, mined: dict,
                      recall: dict) -> dict:
    """The bundle's ``training`` block (the export adds the LiteRT check)."""
    return {"arch": "enrolled head on " + str(base.bundle.metadata.get("arch", "?")),
            "base": str(base.bundle.path), "budget": job.budget, "seed": job.seed,
            "parameters": int(base.model.full.count_params()),
            "head_parameters": int(base.model.head.count_params()),
            "epochs": job.plan.epochs, "tune_epochs": tune_epochs,
            "examples": {job.labels[i]: int(c) for i, c in enumerate(np.bincount(labels, minlength=len(job.labels)))},
            "mined": mined,
            "final_loss": float(losses[-1]), "validation_clip_recall": recall}


def enroll_metadata(job: Job, positives: Positives, others: Others, bank: Bank | None,
                    bank_warning: str | None, notes: list[str]) -> dict:
    """The bundle's ``enroll`` block: what the words were learnt from."""
    bases: dict[str, list[str]] = {}
    for v in job.voices:
        if v.base not in bases.setdefault(v.engine, []):
            bases[v.engine].append(v.base)
    return {"words": job.words, "with_commands": job.with_commands, "engines": job.engines,
            "voices": len(job.voices), "base_voices": bases, "missing_voices": job.missing,
            "held_apart_voices": job.held,
            "clips_per_engine": positives.per_engine,
            "recordings": {w: {"trained": len(split_recordings(r)[0]), "held_apart": len(split_recordings(r)[1])}
                           for w, r in job.recordings.items()},
            "recording_notes": notes,
            "data": str(job.data) if job.data else None,
            "negatives": str(job.negatives) if job.negatives else None,
            "bank": None if bank is None else {"path": str(job.bank), **{k: bank.meta.get(k) for k in
                                                                          ("fingerprint", "base", "made", "rows")}},
            "bank_warning": bank_warning,
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
    lines += takes_lines(r["enroll"])
    if r["training"].get("mined"):
        lines.append("mined: " + mined_line(r["training"]["mined"]))
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
            lines.append(f"  {name:20s} {checked_by(s)}: {stream_line(s)}")
            if s.get("per_voice"):
                lines.append("    per voice: " + ", ".join(f"{v} {c['hits']}/{c['said']}"
                                                         for v, c in s["per_voice"].items()))
            if s.get("fired_on"):
                lines.append("    fired on: " + ", ".join(f"{w} {c['fired']}/{c['said']}"
                                                        for w, c in list(s["fired_on"].items())[:8]))
    lines.append("  (a 95% bound is the highest rate the stream cannot rule out: minutes of speech "
                 "bound nothing near 1 false alarm an hour; the bank's streams are scored by the float "
                 "model, speech windows half a second apart, smoothing approximated)")
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)


def checked_by(s: dict) -> str:
    """How much audio, and how many real people, a stream holds."""
    people = s.get("people", 0)
    return f"{s['minutes']:5.1f} min, " + (f"{people:4d} people" if people else "synthetic  ")


def takes_lines(enroll: dict) -> list[str]:
    """The user's takes: how many trained and were held apart, and each skipped or doubtful."""
    takes = enroll.get("recordings") or {}
    lines = [f"takes of {w!r}: {t['trained']} trained, {t['held_apart']} held apart for testing"
             for w, t in takes.items()]
    return lines + [f"  {note}" for note in enroll.get("recording_notes", [])]


def mined_line(mined: dict) -> str:
    words = mined.get("bank_words") or {}
    parts = [f"{mined.get('speech_windows', 0)} windows of --negatives speech",
             f"{mined.get('bank_speech_windows', 0)} of the bank's speech",
             f"{sum(words.values())} of the bank's other words"
             + (f" ({', '.join(f'{w} {n}' for w, n in list(words.items())[:8])})" if words else "")]
    return ", ".join(parts)


def coverage_warnings(r: dict) -> list[str]:
    """One line for each kind of real audio of other people that was missing from the testing
    streams, or too little to vouch for the product's limits, with what to pass."""
    from kws.eval.scoring import rate_upper_95

    testing, out = r["testing"], []
    bank = r["enroll"].get("bank")
    why = f" ({r['enroll']['bank_warning']})" if r["enroll"].get("bank_warning") else \
        "" if bank else " (no enrolment bank: --bank none)"
    speech = [s for name, s in testing.items() if "speech" in name]
    minutes = sum(s["minutes"] for s in speech)
    if not speech:
        out.append(f"no running speech of real people checked this enrolment{why}: its false alarms in "
                   "conversation are unknown; pass --negatives DIR (people talking without the word)")
    elif minutes < THIN_MINUTES:
        bound = rate_upper_95(sum(s["false_alarms"] for s in speech), minutes / 60)
        out.append(f"only {minutes:.0f} min of running speech by {sum(s['people'] for s in speech)} people checked "
                   f"this enrolment: it rules out only rates above {bound:.0f} false alarms an hour; "
                   "pass --negatives DIR with hours of people talking")
    words = [s for name, s in testing.items() if name.startswith("other people")]
    said = sum(s["other_words"] for s in words)
    if not words:
        out.append(f"no real people saying other words checked this enrolment{why}: pass --data DIR "
                   "(Speech Commands)")
    elif said < THIN_WORDS:
        out.append(f"only {said} clips of real people saying other words checked this enrolment; "
                   "pass --data DIR (Speech Commands: thousands)")
    return out


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
    for name in ("other people", "other people (bank)"):
        if name in t:
            o = t[name]
            parts.append(f"{o['false_alarms']} false alarms among {o['other_words']} other words said by "
                         f"{o['people']} people{' (bank)' if 'bank' in name else ''}")
    for name in ("speech", "speech (bank)"):
        if name in t:
            parts.append(f"{t[name]['false_alarms']} false alarms in {t[name]['minutes']:.1f} min of held-apart "
                         f"speech{' (bank)' if 'bank' in name else ''}")
    for name, what in (("people", "people in Speech Commands"), ("people (bank)", "people in the bank"),
                       ("recordings", "held-apart recordings")):
        if name in t:
            parts.append(f"{what} {t[name]['hits']}/{t[name]['commands']} hits")
    missing = report["enroll"].get("missing_voices")
    if missing:
        parts.append(f"{len(missing)} voices missing (make voices)")
    return "; ".join(parts)
