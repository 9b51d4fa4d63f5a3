"""Speech Commands on disk: which clip belongs to which split and label, and its samples.

Two layouts are read:

* the dataset layout (v0.01 / v0.02): ``<word>/<speaker>_nohash_<n>.wav`` (or ``.flac``),
  ``_background_noise_/``, ``validation_list.txt`` and ``testing_list.txt``. Without the
  lists, clips are split by the official SHA-1 hash of the speaker id (``which_set``), so a
  speaker never spans two splits. A ``_silence_/`` folder (official test silence) belongs to
  the testing split.
* the test-set archive layout: one folder per label, ``_silence_/`` and ``_unknown_/``
  included (``_unknown_/bed_<speaker>_nohash_0.wav.wav``). Every clip is used, whatever split
  is asked for.

Labels are ``["_silence_", "_unknown_", *words]``. Words outside the configured list are
``_unknown_``; in the validation and testing splits they are cut to ``unknown_fraction`` of the
word clips, as the official test does. Unreadable clips are skipped and counted, never fatal.

The official test speakers: a root may hold ``official_test_validation_list.txt`` and
``official_test_testing_list.txt``, the clips of each list that come from speakers of the
official v0.02 test set (the subset the shipped model was made with has them; the official
archives do not). Models score about 5 points lower on those people than on a split as a whole,
and they are how keyword spotters are compared, so ``ClipSet.official`` marks them (their
unknown clips are never cut) and evaluation reports them beside the whole split. A folder per
label (the official test-set archive, or one's own) is scored whole: nothing in it says who spoke.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kws.audio.files import AudioFileError, read_audio
from kws.data.negatives import AUDIO_SUFFIXES
from kws.errors import KwsError
from kws.labels import SILENCE, UNKNOWN, labels_for

NOISE_DIR = "_background_noise_"
OFFICIAL_LIST = "official_test_{split}_list.txt"
SPLITS = ("training", "validation", "testing")
# From tensorflow/examples/speech_commands/input_data.py: keeps the split stable as files are added.
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1


def which_set(filename: str, validation_percentage: float = 10.0,
              testing_percentage: float = 10.0) -> str:
    """The official split of a clip, from a hash of its speaker id (the name before ``_nohash_``)."""
    base_name = Path(filename).name
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


@dataclass
class ClipSet:
    """Clip files of one split with their label indices, plus what was noticed on the way."""

    labels: list[str]
    paths: list[Path] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Per clip: said by a speaker of the official test set (None: the root does not say).
    official: list[bool] | None = None

    def add(self, path: Path, label: str, official: bool = False) -> None:
        self.paths.append(path)
        self.targets.append(self.labels.index(label))
        if self.official is not None:
            self.official.append(official)

    def counts(self) -> dict[str, int]:
        found = np.bincount(np.asarray(self.targets, dtype=int), minlength=len(self.labels))
        return {label: int(n) for label, n in zip(self.labels, found)}


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _read_list(path: Path) -> set[str] | None:
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def is_archive(root: Path) -> bool:
    """The test-set archive has an ``_unknown_`` folder; the dataset never does."""
    return (root / UNKNOWN).is_dir()


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise KwsError(f"{root}: no such dataset directory")


def list_clips(root: str | Path, words: list[str], split: str, *, unknown_fraction: float = 0.1,
               seed: int = 0) -> ClipSet:
    """The clips of ``split`` under ``root`` (either layout), labelled for ``words``."""
    root = Path(root)
    _check_root(root)
    if split not in SPLITS:
        raise KwsError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    clips = _archive_clips(root, words) if is_archive(root) else \
        _dataset_clips(root, words, split, unknown_fraction, seed)
    counts = clips.counts()
    missing = [w for w in words if counts[w] == 0]
    if missing:
        clips.notes.append(f"no {split} clips for: {', '.join(missing)}")
    return clips


def _archive_clips(root: Path, words: list[str]) -> ClipSet:
    # Nothing here says whose voices these are: the official archive's, or anyone's folder per
    # label. Scored whole, with no "official speakers" part.
    clips = ClipSet(labels_for(words), official=None)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE_DIR):
        label = folder.name if folder.name in clips.labels else UNKNOWN
        for path in _audio_files(folder):
            clips.add(path, label)
    return clips


def _dataset_clips(root: Path, words: list[str], split: str, unknown_fraction: float,
                   seed: int) -> ClipSet:
    official = _read_list(root / OFFICIAL_LIST.format(split=split)) if split != "training" else None
    clips = ClipSet(labels_for(words), official=None if official is None else [])
    lists = {"validation": _read_list(root / "validation_list.txt"),
             "testing": _read_list(root / "testing_list.txt")}
    if any(v is None for v in lists.values()):
        clips.notes.append("validation_list.txt/testing_list.txt missing: split by speaker hash")

    def split_of(rel: str) -> str:
        if lists["validation"] is None or lists["testing"] is None:
            return which_set(rel)
        return "validation" if rel in lists["validation"] else \
            "testing" if rel in lists["testing"] else "training"

    is_official = (lambda rel: rel in official) if official is not None else (lambda rel: False)
    unknown: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in _audio_files(folder):
            rel = f"{folder.name}/{path.name}"
            if split_of(rel) != split:
                continue
            if folder.name in words:
                clips.add(path, folder.name, is_official(rel))
            else:
                unknown.append(path)
    if split != "training" and clips.paths:
        # The official validation/test sets hold about unknown_fraction unknown clips; those of
        # official test speakers all stay, so their subset is the same whatever the fraction.
        # With no clip of the model's words (an enrolled word) there is no share to keep: every
        # other word's clip is scored as _unknown_, where such a model's false accepts show.
        keep = min(len(unknown), round(unknown_fraction * len(clips.paths)))
        rng = np.random.default_rng(seed)
        kept = set(rng.choice(len(unknown), keep, replace=False).tolist())
        unknown = [p for i, p in enumerate(unknown)
                   if i in kept or is_official(f"{p.parent.name}/{p.name}")]
    for path in unknown:
        clips.add(path, UNKNOWN, is_official(f"{path.parent.name}/{path.name}"))
    if split == "testing" and (root / SILENCE).is_dir():
        for path in _audio_files(root / SILENCE):  # the official test set's own silence clips
            clips.add(path, SILENCE, official is not None)
    return clips


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad (at the end) to exactly ``length`` samples."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))


@dataclass
class Audio:
    """Decoded clips: ``waves`` is ``(n, clip_samples)`` float32, ``targets`` ``(n,)`` label indices."""

    waves: np.ndarray
    targets: np.ndarray
    skipped: list[str]
    official: np.ndarray | None = None  # per clip, as ``ClipSet.official``


def load_audio(clips: ClipSet, sample_rate: int, clip_samples: int, desc: str = "clips") -> Audio:
    """Decode every clip (resampled to ``sample_rate``); unreadable ones are skipped and listed."""
    waves = np.zeros((len(clips.paths), clip_samples), np.float32)
    keep, skipped = [], []
    for i, path in enumerate(tqdm(clips.paths, desc=f"reading {desc}", unit="clip",
                                  leave=False, disable=None)):
        try:
            waves[i] = fit_length(read_audio(path, sample_rate), clip_samples)
            keep.append(i)
        except AudioFileError as err:
            skipped.append(str(err))
    targets = np.asarray(clips.targets, dtype=np.int32)[keep]
    official = None if clips.official is None else np.asarray(clips.official, bool)[keep]
    return Audio(waves[keep], targets, skipped, official)


def load_audio_files(paths: list[Path], sample_rate: int,
                     desc: str = "files") -> tuple[list[np.ndarray], list[str]]:
    """Decode whole files of any length; unreadable ones are skipped and listed."""
    out, skipped = [], []
    for path in tqdm(paths, desc=f"reading {desc}", unit="file", leave=False, disable=None):
        try:
            out.append(read_audio(path, sample_rate))
        except AudioFileError as err:
            skipped.append(str(err))
    return out, skipped


def load_noise(root: str | Path, sample_rate: int) -> tuple[list[np.ndarray], list[str]]:
    """Background-noise recordings (``_background_noise_``); unreadable ones are skipped."""
    folder = Path(root) / NOISE_DIR
    return load_audio_files(_audio_files(folder) if folder.is_dir() else [], sample_rate, "noise")


def check_training_classes(root: str | Path, config) -> dict[str, int]:
    """Raise ``KwsError`` unless the training split of ``root`` has readable clips of at least
    two classes, one of them a word (silence is made from noise and does not count): a
    one-class set trains a model that says "100% accurate" and hears nothing. Returns the clips
    listed per class. Cheap: it lists files and decodes clips of a class only until one reads.
    """
    clips = list_clips(root, config.words, "training", unknown_fraction=config.train.unknown_fraction,
                       seed=config.train.seed)
    by_label: dict[str, list[Path]] = {}
    for path, target in zip(clips.paths, clips.targets):
        by_label.setdefault(clips.labels[target], []).append(path)
    readable, unreadable = [], []
    for label, paths in by_label.items():
        if label == SILENCE:
            continue
        for path in paths:
            try:
                read_audio(path, config.audio.sample_rate)
            except AudioFileError:
                continue
            readable.append(label)
            break
        else:
            unreadable.append(f"{label} ({len(paths)})")
    require_classes(readable, config.words, root, unreadable)
    return {label: len(paths) for label, paths in by_label.items()}


def require_classes(present: list[str], words: list[str], root: str | Path,
                    unreadable: list[str] = ()) -> None:
    """Raise ``KwsError`` unless ``present`` (labels that have readable training clips) holds a
    word and at least two classes (silence, made from noise, does not count). For
    ``kws_train.main`` after decoding: ``require_classes([labels[t] for t in set(targets)], ...)``.
    """
    present = [label for label in dict.fromkeys(present) if label != SILENCE]
    broken = f"; every clip of {', '.join(unreadable)} is unreadable" if unreadable else ""
    if not [label for label in present if label != UNKNOWN]:
        raise KwsError(f"{root}: no readable training clips of any word ({', '.join(words)}){broken}")
    if len(present) < 2:
        raise KwsError(f"{root}: training needs clips of at least two classes, found only "
                       f"{', '.join(present)}{broken} (add clips of other words, or of unknown "
                       "words in folders of their own)")
