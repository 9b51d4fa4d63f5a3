"""The words of an enrollment: cleaned and checked before any long work, and the texts that must
not be taken for them.

Everything here is cheap and needs neither TensorFlow nor a speech engine, so ``kws enroll``
turns a bad word into one line of error at once (``check_inputs``). ``near_words`` is seeded by
the word itself: the same word gives the same near-words on every machine and every run.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from kws.bundle import check_bundle_target
from kws.errors import KwsError
from kws.labels import clean_word
from kws_train import synth

COMMANDS = list(synth.COMMANDS)


def check_inputs(words: list[str], out: str | Path, recordings: str | Path | None,
                 with_commands: bool, data: str | Path | None) -> list[str]:
    """The cheap checks, before TensorFlow loads: cleaned words, or a one-line KwsError."""
    if not words:
        raise KwsError("give at least one word to enroll")
    cleaned = [clean_word(w) for w in words]
    if len(set(cleaned)) != len(cleaned):
        raise KwsError("a word is given twice")
    if with_commands:
        clash = [w for w in cleaned if w in COMMANDS]
        if clash:
            raise KwsError(f"{clash[0]!r} is already one of the ten commands kept by --with-commands")
        if data is None or not Path(data).is_dir():
            raise KwsError("--with-commands needs the Speech Commands folder (--data DIR)")
    check_bundle_target(out)
    if recordings is not None:
        folder = Path(recordings)
        if not folder.is_dir():
            raise KwsError(f"{folder}: no such folder of recordings")
    return cleaned


ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "w", "sh", "ch", "st"]
VOWELS = "aeiou"


def sounds(text: str) -> str:
    """A rough phonetic key: spellings of one sound made equal (``komputer`` is ``computer``)."""
    key = text.replace(" ", "")
    for a, b in (("ck", "k"), ("ph", "f"), ("wr", "r"), ("kn", "n"), ("qu", "kw"), ("x", "ks"),
                 ("ce", "se"), ("ci", "si"), ("cy", "sy"), ("c", "k"), ("z", "s"), ("y", "i")):
        key = key.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", key)


def near_words(word: str, count: int = 14) -> list[str]:
    """Words that sound close to ``word`` but are not it: another onset, the head or the tail
    alone, the first or last syllable dropped, and for a phrase each of its words alone."""
    out: dict[str, None] = {}
    words = word.split()
    if len(words) > 1:
        for w in words:
            out.setdefault(w, None)
        out.setdefault(" ".join(words[:-1]), None)
    main = max(words, key=len)
    m = re.match(r"([^aeiouy]*)(.*)", main)
    onset, rest = m.group(1), m.group(2)
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    for new in rng.permutation(ONSETS):
        if new != onset and rest:
            out.setdefault(word.replace(main, new + rest, 1), None)
        if len(out) >= count // 2:
            break
    vowels = [i for i, c in enumerate(main) if c in VOWELS]
    if len(vowels) >= 2:  # head and tail around the second vowel group
        cut = vowels[1]
        out.setdefault(main[:cut].rstrip(VOWELS) or main[:cut], None)
        out.setdefault(main[cut - 1:], None)
    if len(main) >= 4:
        out.setdefault(main[:-2], None)
        out.setdefault(main[1:], None)
    out.setdefault(main + "ing" if not main.endswith("e") else main[:-1] + "ing", None)
    result = [w for w in out if w and sounds(w) != sounds(word) and len(w.replace(" ", "")) >= 2]
    return result[:count]


def bundle_words(words: list[str], with_commands: bool) -> set[str]:
    """The bundle's words: no negative may be one of them."""
    return set(words) | (set(COMMANDS) if with_commands else set())


def negative_texts(words: list[str], with_commands: bool) -> tuple[list[str], list[str]]:
    """``(other words, near-words)`` to synthesize as negatives; none is or holds a bundle word
    (the commands are other words unless the bundle keeps them)."""
    labels = bundle_words(words, with_commands)

    def allowed(text: str) -> bool:
        return text not in labels and not any(re.search(rf"\b{re.escape(w)}\b", text) for w in labels)

    others = [w for w in synth.negative_words() + ([] if with_commands else COMMANDS) if allowed(w)]
    nears = [n for w in words for n in near_words(w) if allowed(n)]
    return others, nears
