"""Class labels of every model: ``["_silence_", "_unknown_", *words]``.

The two non-words are classes the classifier learns but the detector never reports.
"""

from __future__ import annotations

SILENCE, UNKNOWN = NON_WORDS = ("_silence_", "_unknown_")


def labels_for(words: list[str]) -> list[str]:
    """The classifier's labels for ``words``: the two non-words first, then the words in order."""
    return [SILENCE, UNKNOWN, *words]


def reportable(labels: list[str]) -> list[str]:
    """Labels that are reported as detections (not ``_silence_`` or ``_unknown_``)."""
    return [label for label in labels if label not in NON_WORDS]
