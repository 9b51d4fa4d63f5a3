"""Negative audio: folders of speech, phrases, music or noise in which no command is said.

Any folder of audio files is a negative source. Its files are split between training and
validation by a hash of the file name (as Speech Commands splits speakers), so every tool
that asks for a split of the same folder gets the same files: training crops windows out of
the ``training`` files, while ``kws make-stream --negatives`` builds validation streams out of
the ``validation`` files, and neither ever sees the other's audio.

LibriSpeech names files ``<reader>-<chapter>-<utterance>``; the hash is taken over the part
before the first ``-``, so a reader's files stay on one side.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kws.errors import KwsError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


def audio_files(folder: str | Path) -> list[Path]:
    """Every audio file below ``folder`` (recursively), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KwsError(f"{folder}: no such folder of audio")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def split_of(path: str | Path, holdout: float) -> str:
    """``"validation"`` for about ``holdout`` of speakers (hash of the name before ``-``)."""
    speaker = Path(path).stem.split("-")[0]
    value = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if value < holdout else "training"


def negative_files(folder: str | Path, split: str | None, holdout: float) -> list[Path]:
    """The audio files of ``folder`` in ``split`` (``None``: all of them)."""
    files = audio_files(folder)
    return files if split is None else [p for p in files if split_of(p, holdout) == split]
