"""Real speech with known answers (``tests/data/reference``, built by ``tests/data/make_reference.py``).

``commands.flac``: two minutes of Speech Commands test clips (CC BY 4.0, ``ATTRIBUTION.md``),
commands and other words over background noise, labelled in ``commands.csv``.
``expected_<model>.json``: what each model detected there when last regenerated
(``.venv/bin/python tests/data/make_reference.py expected``), as librosa keeps reference values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kws.eval.testaudio import Label, read_labels

REFERENCE = Path(__file__).parent / "data" / "reference"
AUDIO = REFERENCE / "commands.flac"
REGENERATE = ".venv/bin/python tests/data/make_reference.py expected"
TOLERANCE = 0.1  # s: a detection still "the same" when it moves by up to five 20-ms hops
LATE = 1.0  # s after a word's speech ends that a detection of it still counts (stream.tolerance_ms)


@dataclass(frozen=True)
class Expected:
    thresholds: dict[str, float]
    detections: list[dict]  # {"time", "word", "score"}, as `kws replay --json` prints them (less "file")


def expected(name: str) -> Expected:
    record = json.loads((REFERENCE / f"expected_{name}.json").read_text())
    return Expected(record["thresholds"], record["detections"])


def labels() -> list[Label]:
    return read_labels(AUDIO.with_suffix(".csv"))


def belongs(detection: dict, label: Label) -> bool:
    """The detection is of the labelled word, from its start to ``LATE`` after its end."""
    return detection["word"] == label.word and label.start < detection["time"] <= label.end + LATE


def heard(detections: list[dict], said: list[Label]) -> set[int]:
    """Indices of the labelled words some detection belongs to."""
    return {i for i, lab in enumerate(said) if any(belongs(d, lab) for d in detections)}


def false_alarms(detections: list[dict], said: list[Label]) -> list[dict]:
    """Detections that belong to no labelled word (other words, noise, a wrong word)."""
    return [d for d in detections if not any(belongs(d, lab) for lab in said)]


def changes(found: list[dict], before: list[dict], said: list[Label]) -> list[str]:
    """How ``found`` falls short of ``before`` on the labelled audio: each word heard before and
    not now, and each false alarm not made before (same word within ``TOLERANCE``). A word
    newly heard, or a false alarm gone, is no fault."""
    out = [f"lost: {said[i].word} at {said[i].start:.2f}-{said[i].end:.2f} s ({said[i].source})"
           for i in sorted(heard(before, said) - heard(found, said))]
    for d in false_alarms(found, said):
        if not any(d["word"] == e["word"] and abs(d["time"] - e["time"]) <= TOLERANCE for e in before):
            out.append(f"new false alarm: {d['word']} at {d['time']:.2f} s ({d['score']:.2f})")
    return out
