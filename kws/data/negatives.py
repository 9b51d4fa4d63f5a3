"""Negative audio: folders of speech, phrases, music or noise in which no command is said.

Any folder of audio files is a negative source. Its files are split by a hash of the speaker
(as Speech Commands splits speakers): ``holdout`` of the speakers are kept apart, half for
``validation`` (choosing thresholds) and half for ``testing`` (reporting), the rest are
``training``. Every tool that asks for a split of the same folder gets the same files:
training crops windows out of the ``training`` files, ``kws make-stream --negatives`` builds
streams of the other two, and none hears another's audio.

LibriSpeech names files ``<reader>-<chapter>-<utterance>``; the hash is taken over the part
before the first ``-``, so a reader's files stay on one side. A corpus with a folder per
speaker (speechocean762: ``<split>/<speaker>/<utterance>.flac``) is hashed by that folder.
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


def speaker_of(path: str | Path, folder: str | Path | None = None) -> str:
    """Who speaks in ``path``: the file name before its first ``-`` (LibriSpeech's
    ``<reader>-<chapter>-<utterance>``); else, for a file in a folder of its own below
    ``folder`` (``<folder>/.../<speaker>/<utterance>``, as speechocean762 is laid out), that
    folder's name; else the file itself."""
    path = Path(path)
    if "-" in path.stem or folder is None or path.parent.resolve() == Path(folder).resolve():
        return path.stem.split("-")[0]
    return path.parent.name


def split_of(path: str | Path, holdout: float, folder: str | Path | None = None) -> str:
    """``"testing"``, ``"validation"`` (``holdout / 2`` of speakers each) or ``"training"``,
    from a hash of the speaker (``speaker_of``)."""
    speaker = speaker_of(path, folder)
    value = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "testing" if value < holdout / 2 else "validation" if value < holdout else "training"


def negative_files(folder: str | Path, split: str | None, holdout: float) -> list[Path]:
    """The audio files of ``folder`` in ``split`` (``None``: all of them)."""
    files = audio_files(folder)
    return files if split is None else [p for p in files if split_of(p, holdout, folder) == split]
