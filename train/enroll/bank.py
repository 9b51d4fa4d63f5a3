"""The enrolment bank: what ``kws enroll`` knows of real people when it is given no data.

Enrolment trains on the shipped model's frozen layers (``kws_train.enroll.model``): what it
needs of real audio is what those layers make of it, not the audio. The bank holds the base
model's activations where enrolment cuts it (each member's input to its last block, the
``prefix``: from them the last block is fine-tuned and the pooled embedding computed, so real
people train, are mined and check the fine-tuned model, not only its head) of

* one-second windows of running speech every ``HOP_SECONDS`` (``--speech``: speechocean762 and
  LibriSpeech for the shipped bank; one-word utterances left out: a word said alone is not
  running speech);
* other people saying words (``--words``: Speech Commands clips, each row labelled with its
  word, so an enrolment leaves out its own word, hears real people say it, and reports which
  other words fire);
* background noise at the levels of silence (``_silence_``; the ``--words`` folder's
  ``_background_noise_``).

Every row keeps its split, speakers apart: ``training`` rows train and are mined, ``validation``
rows set thresholds, ``testing`` rows are the report's; its speaker (the report counts people);
and for speech its recording and offset (the windows over one passage replay as one stream, so
a run of windows is one false alarm). It is package data, a few MB (``train/enroll/bank.npz``):
each row's activations in 64 levels of one byte, from the row's smallest to its largest (the
pooled embedding moves by 0.7%; ReLU outputs, 68% of them 0 on the shipped model, which the
compression keeps small: about 0.5 kB a row). Pooled embeddings alone would be a tenth of that,
but freeze the last block: enrolled on them, "marvin" was heard in 11 of 23 real people where
fine-tuning heard 17, at the same false alarms.

A bank belongs to one backbone: ``meta["fingerprint"]`` is ``model.fingerprint`` of the base it
was computed with, and an enrolment on another base leaves it out with one line saying how to
make one. The default model's recipe (``train/recipes/rounds.sh``) ends by regenerating it:

    python -m kws_train.enroll.make_bank --speech NEG/librispeech MORE --words DATA

(DATA a Speech Commands root, NEG and MORE folders of running speech, as rounds.sh names them)

(``make_bank``: ``--base``, the bundle, default the config's model; ``--out``, default the
shipped file; ``--megabytes``, about its size, 5). ``build`` draws a fixed share of rows for
each split and kind, whole recordings spread over speakers, so the same sources and base give
the same bank; 15 s on one core for the shipped one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio
from kws.config import Config
from kws.data.negatives import audio_files, split_of
from kws.errors import KwsError
from kws.eval.testaudio import NEGATIVE
from kws.labels import SILENCE
from kws.writes import staged

BANK = Path(__file__).with_name("bank.npz")
HOP_SECONDS = 0.5
SPLITS = ("training", "validation", "testing")
# Of the bank's rows: what trains and is mined, what sets thresholds, what the report counts.
SHARES = {("speech", "training"): 0.25, ("speech", "validation"): 0.18, ("speech", "testing"): 0.21,
          ("word", "training"): 0.20, ("word", "validation"): 0.06, ("word", "testing"): 0.08,
          ("silence", "training"): 0.02}
LEVELS = 63  # a row's activations in 0..LEVELS from its smallest to its largest
COMMAND = "python -m kws_train.enroll.make_bank"  # its recipe (make_bank.py)


@dataclass
class Bank:
    """The rows of a bank: activations, with what each row is and where it came from."""

    levels: list[np.ndarray]  # per member: (rows, frames, channels) uint8, 0..LEVELS
    lows: list[np.ndarray]    # per member: (rows,) the value of level 0
    scales: list[np.ndarray]  # per member: (rows,) the value of LEVELS less that of 0
    label: np.ndarray       # index into names: the word, NEGATIVE (running speech) or SILENCE
    names: list[str]
    split: np.ndarray       # index into SPLITS
    speaker: np.ndarray     # index into speakers
    speakers: list[str]     # "<source folder>/<speaker>"
    source: np.ndarray      # speech: the recording (index into sources); else -1
    sources: list[str]
    offset: np.ndarray      # speech: the window's start in its recording, seconds
    meta: dict

    def rows(self, split: str, kind: str, exclude: set[str] = frozenset()) -> np.ndarray:
        """Indices of ``split``'s rows of ``kind`` (speech, word, silence), words in ``exclude``
        left out."""
        names = np.array(self.names)
        labels = names[self.label]
        is_kind = labels == NEGATIVE if kind == "speech" else labels == SILENCE if kind == "silence" else \
            (labels != NEGATIVE) & (labels != SILENCE)
        keep = is_kind & (self.split == SPLITS.index(split)) & ~np.isin(labels, sorted(exclude))
        return np.flatnonzero(keep)

    def words(self, rows: np.ndarray) -> list[str]:
        return [self.names[i] for i in self.label[rows]]

    def activations(self, rows: np.ndarray) -> list[np.ndarray]:
        """The rows' activations, per member, as the prefix gave them (within a level)."""
        return [q[rows].astype(np.float32) * (s[rows] / LEVELS)[:, None, None] + low[rows][:, None, None]
                for q, low, s in zip(self.levels, self.lows, self.scales)]


def load_bank(path: str | Path) -> Bank:
    """The bank at ``path``; a ``KwsError`` naming it when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            members = range(int(z["members"]))
            return Bank([z[f"levels{k}"] for k in members], [z[f"low{k}"] for k in members],
                        [z[f"scale{k}"] for k in members],
                        z["label"], z["names"].tolist(), z["split"], z["speaker"], z["speakers"].tolist(),
                        z["source"], z["sources"].tolist(), z["offset"].astype(np.float32),
                        json.loads(str(z["meta"])))
    except (OSError, KeyError, ValueError) as err:
        raise KwsError(f"{path}: not an enrolment bank ({err})") from None


def usable_bank(path: Path | None, fingerprint: str) -> tuple[Bank | None, str | None]:
    """``(the bank at path, None)`` when it was computed with the backbone ``fingerprint``;
    else ``(None, why not and how to make one)``, one line."""
    make = f"make one for this base with `{COMMAND} --base DIR --speech DIR --words DIR`"
    if path is None:
        return None, None
    if not Path(path).is_file():
        return None, f"no enrolment bank at {path}: {make}"
    bank = load_bank(path)
    if bank.meta.get("fingerprint") != fingerprint:
        return None, (f"the enrolment bank {path} belongs to another base model ({bank.meta.get('base')}, "
                      f"backbone {bank.meta.get('fingerprint')}; this one is {fingerprint}): not used; {make}")
    return bank, None


def training_rows(bank: Bank, exclude: set[str], speech: int, words: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The training rows an enrolment learns from: ``speech`` windows of running speech and
    ``words`` clips of other words at random (the rest wait for mining), and every silence row;
    words in ``exclude`` (the bundle's) never."""
    def some(rows, count):
        return rows[np.sort(rng.permutation(len(rows))[:count])]

    return np.concatenate([some(bank.rows("training", "speech"), speech),
                           some(bank.rows("training", "word", exclude), words), bank.rows("training", "silence")])


# --- the recipe -----------------------------------------------------------------------------

@dataclass
class Recording:
    """One file of a source: its split, speaker and (speech) the seconds it lasts."""

    path: Path
    split: str
    speaker: str
    label: str            # the word, NEGATIVE or SILENCE


def speech_recordings(folder: Path, holdout: float) -> list[Recording]:
    """Every recording of running speech in ``folder``. With a ``transcripts.tsv`` (split,
    speaker, utterance, ..., text; speechocean762's build) the corpus's own halves: ``train``
    trains, ``test`` speakers are held apart (half validation, half testing), one-word
    utterances left out; else ``kws.data.negatives``'s split by the speaker of the file name."""
    tsv = folder / "transcripts.tsv"
    if not tsv.is_file():
        return [Recording(p, split_of(p, holdout), f"{folder.name}/{p.stem.split('-')[0]}", NEGATIVE)
                for p in audio_files(folder)]
    found = {p.stem: p for p in audio_files(folder)}
    out = []
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = found.get(row["utterance"])
            if path is None or len(row["text"].split()) < 2:
                continue
            speaker = f"{folder.name}/{row['speaker']}"
            split = "training" if row["split"] == "train" else \
                "validation" if _hash(speaker) % 2 == 0 else "testing"
            out.append(Recording(path, split, speaker, NEGATIVE))
    return out


def word_recordings(folder: Path) -> list[Recording]:
    """Every clip of a Speech Commands folder, labelled with its word, in its split (the
    folder's lists, or the speaker hash)."""
    from kws.data.speech_commands import list_clips

    words = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))
    out = []
    for split in SPLITS:
        clips = list_clips(folder, words, split)
        for path, target in zip(clips.paths, clips.targets):
            if clips.labels[target] in words:  # not the official test's silence clips
                speaker = f"{folder.name}/{path.name.split('_nohash_')[0]}"
                out.append(Recording(path, split, speaker, clips.labels[target]))
    return out


def _hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def pick_recordings(recs: list[Recording], count: int, rng: np.random.Generator,
                    windows) -> list[Recording]:
    """Recordings for about ``count`` rows, one speaker after another (each speaker's
    recordings in random order), so a share of rows holds as many people as it can;
    ``windows(rec)``: the rows a recording gives."""
    by_speaker: dict[str, list[Recording]] = {}
    for i in rng.permutation(len(recs)):
        by_speaker.setdefault(recs[i].speaker, []).append(recs[i])
    queues = [by_speaker[s] for s in sorted(by_speaker, key=lambda s: _hash(s))]
    out, total = [], 0
    while total < count and any(queues):
        for q in queues:
            if q and total < count:
                rec = q.pop()
                out.append(rec)
                total += windows(rec)
    return out


class Builder:
    """Rows gathered for one bank: activations computed in batches as they come."""

    def __init__(self, base, config: Config):
        from tqdm import tqdm

        self.base, self.sr, self.length = base, config.audio.sample_rate, config.audio.clip_samples
        self.hop = round(HOP_SECONDS * self.sr)
        self.waves: list[np.ndarray] = []
        self.rows: list[tuple] = []  # (label, split, speaker, source, offset) per wave
        self.acts: list[list[np.ndarray]] = []  # per batch, per member
        self.bar = tqdm(unit="row", desc="activations", file=sys.stderr, disable=None, dynamic_ncols=True)

    def add(self, wave: np.ndarray, label: str, split: str, speaker: str, source: str = "",
            offset: float = 0.0) -> None:
        from kws_train.enroll.audio import fit

        self.waves.append(fit(wave, self.length))
        self.rows.append((label, split, speaker, source, offset))
        if len(self.waves) >= 2048:
            self.flush()

    def add_speech(self, rec: Recording, wave: np.ndarray) -> None:
        for at in range(0, max(1, len(wave) - self.length + 1), self.hop):
            self.add(wave[at:at + self.length], NEGATIVE, rec.split, rec.speaker, f"{rec.speaker}/{rec.path.stem}",
                     at / self.sr)

    def flush(self) -> None:
        from kws_train.enroll.model import activations

        if self.waves:
            self.acts.append(activations(self.waves, self.base.frontend, self.base.model.prefix))
            self.bar.update(len(self.waves))
            self.waves = []

    def save(self, out: Path, meta: dict) -> None:
        self.flush()
        self.bar.close()
        write_bank(out, [np.concatenate(member) for member in zip(*self.acts)], self.rows, meta)


def write_bank(out: Path, acts: list[np.ndarray], rows: list[tuple], meta: dict) -> None:
    """The bank file: each member's activations ``acts`` in levels and, per row, ``(label, split,
    speaker, source, offset)`` as indices into name lists."""
    arrays = {"members": np.array(len(acts))}
    for k, a in enumerate(acts):
        flat = a.reshape(len(a), -1)
        low, scale = flat.min(axis=1), np.maximum(flat.max(axis=1) - flat.min(axis=1), 1e-12)
        arrays[f"levels{k}"] = np.round((a - low[:, None, None]) / scale[:, None, None] * LEVELS).astype(np.uint8)
        arrays[f"low{k}"], arrays[f"scale{k}"] = low.astype(np.float32), scale.astype(np.float32)
    labels, splits, speakers, sources, offsets = zip(*rows)
    names, speaker_names, source_names = sorted(set(labels)), sorted(set(speakers)), sorted(set(sources) - {""})
    index = {n: i for i, n in enumerate(names)}
    who = {n: i for i, n in enumerate(speaker_names)}
    where = {n: i for i, n in enumerate(source_names)}
    with staged(out) as tmp:
        np.savez_compressed(
            tmp, **arrays,
            label=np.array([index[x] for x in labels], np.int16), names=np.array(names),
            split=np.array([SPLITS.index(s) for s in splits], np.uint8),
            speaker=np.array([who[s] for s in speakers], np.int32), speakers=np.array(speaker_names),
            source=np.array([where.get(s, -1) for s in sources], np.int32),
            sources=np.array(source_names or [""]), offset=np.array(offsets, np.float16),
            meta=np.array(json.dumps(meta)))


def build(config: Config, base_path: Path, speech: list[Path], words: Path | None, out: Path,
          megabytes: float, seed: int = 0) -> dict:
    """Compute the bank of ``base_path`` from the folders and write it to ``out``; its meta."""
    from kws.data.speech_commands import load_noise
    from kws.data.noise import NoiseBed, log_uniform
    from kws_train.enroll.model import fingerprint, open_base

    started = time.monotonic()
    base = open_base(base_path, config, 2, seed, threads=1)
    size = sum(int(np.prod(prefix.output.shape[1:])) for prefix, _ in base.model.pairs)
    # A byte per activation, about 0.4 of that once compressed (ReLU zeros), and the row's indices.
    total = int(megabytes * 1e6 / (0.4 * size + 16))
    rng = np.random.default_rng(seed)
    builder = Builder(base, config)
    sr, length = builder.sr, builder.length
    holdout = config.train.negatives.holdout
    talk = [r for folder in speech for r in speech_recordings(folder, holdout)]
    said = word_recordings(words) if words else []
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        chosen = pick_recordings([r for r in talk if r.split == split], round(SHARES["speech", split] * total),
                                 rng, lambda r: max(1, round(_seconds(r.path) / HOP_SECONDS) - 1))
        for rec in chosen:
            try:
                builder.add_speech(rec, read_audio(rec.path, sr))
            except KwsError:
                continue
        picked = pick_recordings([r for r in said if r.split == split], round(SHARES["word", split] * total),
                                 rng, lambda r: 1)
        for rec in picked:
            try:
                builder.add(read_audio(rec.path, sr), rec.label, split, rec.speaker)
            except KwsError:
                continue
    noises = load_noise(words, sr)[0] if words else []
    if noises:
        bed = NoiseBed(config.train.augment, noises, sr)
        for _ in range(round(SHARES["silence", "training"] * total)):
            level = log_uniform(rng, *config.train.augment.silence_rms)
            builder.add(np.clip(bed.noise(length, rng) * level, -1, 1), SILENCE, "training", "noise")
    for label, split, speaker, _, _ in builder.rows:
        kind = "speech" if label == NEGATIVE else "silence" if label == SILENCE else "word"
        counts.setdefault(f"{kind} {split}", {"rows": 0, "speakers": set()})
        counts[f"{kind} {split}"]["rows"] += 1
        counts[f"{kind} {split}"]["speakers"].add(speaker)
    meta = {"fingerprint": fingerprint(base, sr), "base": _shown(base_path),
            "arch": str(base.bundle.metadata.get("arch", "?")), "activations": size, "hop_seconds": HOP_SECONDS,
            "sample_rate": sr, "clip_seconds": config.audio.clip_seconds,
            "speech": [_shown(p) for p in speech], "words": _shown(words) if words else None, "seed": seed,
            "rows": {k: {"rows": v["rows"], "speakers": len(v["speakers"])} for k, v in sorted(counts.items())},
            "made": time.strftime("%Y-%m-%d"), "seconds": round(time.monotonic() - started)}
    builder.save(out, meta)
    return meta


def _shown(path: Path) -> str:
    """``path`` as the meta shows it: relative to here where it is below (no home folders)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return Path(path).name


def _seconds(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except RuntimeError:
        return 0.0
