"""What the head learns from: real negatives loaded, then every training example made.

Negatives (``load_negatives``): Speech Commands clips of other words (``--data``), the
held-apart splits of Speech Commands for the streams, and running speech (``--negatives``, its
training split only). Examples (``training_examples``): the words augmented (every engine an
equal share, recordings more copies), the head or tail of a word alone, other words,
near-words, Speech Commands and windows of running speech as ``_unknown_``, and noise as
``_silence_``. ``validation_clips`` and ``calibration_clips`` make the clips that score the
head during training and calibrate the int8 model.

Each function draws from its own stage's generator (``Job.rng``), in a fixed order within it:
the same seed gives the same examples, whatever other stages draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio
from kws.data.negatives import audio_files, negative_files
from kws.errors import KwsError
from kws.labels import SILENCE, UNKNOWN
from kws_train.enroll.audio import fit, partial, place, positive
from kws_train.enroll.bank import Bank, training_rows
from kws_train.enroll.job import Job
from kws_train.enroll.voices import Others, Positives, split_recordings
from kws_train.enroll.words import COMMANDS


@dataclass
class Examples:
    """Waves waiting for features, with their label indices."""

    waves: list = field(default_factory=list)
    labels: list = field(default_factory=list)

    def add(self, wave: np.ndarray, label: int) -> None:
        self.waves.append(np.asarray(wave, np.float32))
        self.labels.append(label)


@dataclass
class Negatives:
    """Real audio without the words (empty where the folder was not given)."""

    noises: list = field(default_factory=list)  # Speech Commands background noise
    sc_train: list = field(default_factory=list)  # Speech Commands clips of other words
    sc_commands: dict = field(default_factory=dict)  # command -> clips (--with-commands)
    # split -> (folder, source, wave) of other words for the validation and testing streams
    sc_streams: dict = field(default_factory=lambda: {"validation": [], "testing": []})
    sc_real: list = field(default_factory=list)  # (word, source, wave): people saying an enrolled word
    speech_train: list = field(default_factory=list)  # running speech, training split
    speech_files: dict = field(default_factory=lambda: {"training": [], "validation": [], "testing": []})
    bank: Bank | None = None  # real people through the base model (kws_train.enroll.bank), for this base


def load_negatives(job: Job, bank: Bank | None, bar) -> Negatives:
    """Speech Commands (training clips of other words, the commands kept, the held-apart splits
    for the streams), running speech (its training split read, the others listed), and the
    ``bank`` that fits the base model."""
    from kws.data.speech_commands import load_noise

    rng = job.rng("loading negatives")
    neg = Negatives(noises=load_noise(job.data, job.sr)[0] if job.data else [], bank=bank)
    if job.data:
        _speech_commands(job, neg, rng, bar)
    if job.negatives:
        holdout = job.config.train.negatives.holdout
        for p in negative_files(job.negatives, "training", holdout):
            try:
                neg.speech_train.append(read_audio(p, job.sr))
            except KwsError:
                continue
        neg.speech_files = {s: negative_files(job.negatives, s, holdout) for s in neg.speech_files}
    bar.advance(1.0)
    return neg


def _speech_commands(job: Job, neg: Negatives, rng: np.random.Generator, bar) -> None:
    from kws.data.speech_commands import list_clips

    labels = job.labels
    keep = [c for c in COMMANDS if c in labels]
    for split in ("training", "validation", "testing"):
        listed = list_clips(job.data, keep or ["yes"], split, unknown_fraction=1.0, seed=job.seed)
        by_folder: dict[str, list[Path]] = {}
        for path in listed.paths:
            by_folder.setdefault(path.parent.name, []).append(path)
        if split == "training":
            other = [p for f, ps in by_folder.items() if f not in job.taken for p in ps]
            neg.sc_train = _read_some(other, job.plan.speech_commands, rng, job.sr)
            neg.sc_commands = {c: _read_some(by_folder.get(c, []), job.plan.command_clips, rng, job.sr)
                               for c in keep}
        else:
            if split == "testing":
                # Every clip of an enrolled word, whatever its split: none trains or sets
                # a threshold (the enrolled words are left out of the negatives).
                for w in job.words:
                    ps = audio_files(job.data / w) if (job.data / w).is_dir() else []
                    neg.sc_real += [(w, f"speech_commands:{w}/{p.name}", read_audio(p, job.sr))
                                    for p in _some(ps, 150, rng)]
            folders = sorted(f for f in by_folder if f not in set(job.words))
            n = job.plan.stream_people_words + (len(keep) * job.plan.stream_people_words // 4)
            pool = [(f, p) for f in folders for p in by_folder[f]]
            neg.sc_streams[split] = [(f, f"speech_commands:{f}/{p.name}", read_audio(p, job.sr))
                                     for f, p in (pool[j] for j in rng.permutation(len(pool))[:n])]
        bar.advance(0.3 if split == "training" else 0.45 if split == "validation" else 0.6)


def _some(paths: list[Path], count: int, rng: np.random.Generator) -> list[Path]:
    """``count`` of ``paths`` picked at random."""
    return [paths[i] for i in rng.permutation(len(paths))[:count]]


def _read_some(paths: list[Path], count: int, rng: np.random.Generator, sr: int) -> list[np.ndarray]:
    """``count`` of ``paths`` picked at random, read."""
    return [read_audio(p, sr) for p in _some(paths, count, rng)]


def training_examples(job: Job, positives: Positives, others: Others, neg: Negatives, augmenter) -> Examples:
    """Every training example: the words, the commands kept, then ``_unknown_``, then ``_silence_``
    (a tenth of all). The bank's rows are activations already: they join after ``embed``
    (``bank_training``)."""
    index, length = job.index, job.length
    rng = job.rng("training examples")
    unknown = index[UNKNOWN]
    examples = Examples()
    for w in job.words:
        _add_word(examples, job, w, positives, augmenter, rng)
    positive_count = len(examples.labels)
    for c, waves in neg.sc_commands.items():
        for wave in waves:
            examples.add(augmenter.waveform(fit(wave, length), rng), index[c])
    # head or tail of the word alone: not yet, or no longer, the word
    word_waves = [wv for w in job.words for wv in positives.waves[w]["training"]] + \
                 [wv for w in job.words for _, wv in split_recordings(job.recordings.get(w, []))[0]]
    for _ in range(round(job.plan.partial_fraction * positive_count)):
        wave = word_waves[rng.integers(len(word_waves))]
        examples.add(partial(wave, augmenter, rng, length), unknown)
    for clip, repeats in [(c, 1) for c in others.train] + [(c, 2) for c in others.near_train]:
        wave = read_audio(clip.path, job.sr)
        for _ in range(repeats):
            examples.add(augmenter.waveform(place(wave, length, rng), rng, shift=False), unknown)
    for wave in neg.sc_train:
        examples.add(augmenter.waveform(fit(wave, length), rng), unknown)
    _add_speech_windows(examples, neg.speech_train, job.plan.speech_windows, unknown,
                        augmenter, rng, length)
    for _ in range(round(job.plan.silence_fraction * len(examples.labels))):
        examples.add(augmenter.silence(length, rng), index[SILENCE])
    return examples


def bank_training(job: Job, bank: Bank) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, label indices)`` of the bank's rows that train: running speech and other
    people's words as ``_unknown_``, background noise as ``_silence_``."""
    rows = training_rows(bank, job.taken, job.plan.bank_speech, job.plan.bank_words, job.rng("bank"))
    silence = np.array(bank.words(rows)) == SILENCE
    return rows, np.where(silence, job.index[SILENCE], job.index[UNKNOWN]).astype(np.int32)


def _add_word(examples: Examples, job: Job, word: str, positives: Positives, augmenter,
              rng: np.random.Generator) -> None:
    """The word's training clips and recordings, augmented."""
    label = job.index[word]
    # Every engine gets the same share of the positives: espeak's 12 robotic base voices
    # would otherwise outweigh pico's two natural ones six to one.
    engines_of = [s_.split("_")[0] for s_ in positives.speakers[(word, "training")]]
    per_engine_clips = {e: engines_of.count(e) for e in set(engines_of)}
    share = len(engines_of) / len(per_engine_clips)
    for wave, engine in zip(positives.waves[word]["training"], engines_of):
        copies = max(2, round(job.plan.copies * share / per_engine_clips[engine]))
        for _ in range(copies):
            examples.add(positive(wave, augmenter, rng, job.length), label)
    for _, wave in split_recordings(job.recordings.get(word, []))[0]:
        for _ in range(job.plan.recording_copies):
            examples.add(positive(wave, augmenter, rng, job.length), label)


def _add_speech_windows(examples: Examples, speech: list[np.ndarray], count: int, label: int,
                        augmenter, rng: np.random.Generator, length: int) -> None:
    """``count`` windows of running speech, each file picked in proportion to its length."""
    if not speech:
        return
    sizes = np.array([max(len(f), length) for f in speech], float)
    for _ in range(count):
        f = speech[rng.choice(len(speech), p=sizes / sizes.sum())]
        at = int(rng.integers(0, max(1, len(f) - length + 1)))
        examples.add(augmenter.waveform(fit(f[at:at + length], length), rng), label)


def validation_clips(job: Job, positives: Positives, others: Others, augmenter) -> Examples:
    """The held-apart voices' words, other words and silence, not augmented: the head's
    validation data (recall per label, in the metadata)."""
    index, length = job.index, job.length
    rng = job.rng("validation clips")
    clips = Examples()
    for w in job.words:
        for wave in positives.waves[w]["validation"]:
            clips.add(place(wave, length, rng), index[w])
    for _, wave in others.streams["validation"]:
        clips.add(place(wave, length, rng), index[UNKNOWN])
    for _ in range(max(10, len(clips.labels) // 10)):
        clips.add(augmenter.silence(length, rng), index[SILENCE])
    return clips


def calibration_clips(job: Job, positives: Positives, others: Others, augmenter) -> list[np.ndarray]:
    """Clips that span what the int8 model will see: training words, silence, other words."""
    length, rng = job.length, job.rng("calibration clips")
    waves = [place(w_, length, rng) for w in job.words for w_ in positives.waves[w]["training"][:60]]
    waves += [augmenter.silence(length, rng) for _ in range(30)]
    waves += [place(read_audio(c.path, job.sr), length, rng) for c in list(others.train)[:150]]
    return waves
