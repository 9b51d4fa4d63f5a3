"""Class labels of every model: ``["_silence_", "_unknown_", *words]``.

The two non-words are classes the classifier learns but the detector never reports.
"""

from __future__ import annotations

import re

from kws.errors import KwsError

SILENCE, UNKNOWN = NON_WORDS = ("_silence_", "_unknown_")


def labels_for(words: list[str]) -> list[str]:
    """The classifier's labels for ``words``: the two non-words first, then the words in order."""
    return [SILENCE, UNKNOWN, *words]


def reportable(labels: list[str]) -> list[str]:
    """Labels that are reported as detections (not ``_silence_`` or ``_unknown_``)."""
    return [label for label in labels if label not in NON_WORDS]


def clean_word(word: str, command: str = "enroll") -> str:
    """A word or short phrase to spot, as kws keeps it (lower case, single spaces), or a one-line
    ``KwsError`` for what cannot be one; ``kws record`` and ``kws enroll`` (``command``) take the
    same words."""
    text = " ".join(str(word).strip().lower().split())
    if not text:
        raise KwsError(f"empty word: give the word or short phrase, e.g. kws {command} computer")
    if not re.fullmatch(r"[a-z][a-z' ]*", text):
        raise KwsError(f"{word!r}: a word to spot is letters (and spaces or ') only")
    if len(text.split()) > 4 or len(text) > 30:
        raise KwsError(f"{word!r}: too long to say within one second; give a word or a short phrase")
    if text in NON_WORDS:
        raise KwsError(f"{word!r} is a reserved label")
    return text
