"""The tf.data input pipeline: balanced epochs of augmented clips -> FrontEnd features.

Decoded clips stay in memory (13k one-second clips are 0.8 GB as float32, decoded once per
run in seconds), so an epoch costs only augmentation and ``FrontEnd.compute`` (~0.2 ms a
clip): the features come from the one front end, never a re-implementation. Each batch is
built in numpy inside ``tf.numpy_function`` (parallel map, prefetch) from a seed derived from
``(seed, epoch, batch)``, so a run and its resumption see the same data.

Validation and test features are computed once, without augmentation, and cached as arrays.

Distillation (``train.teacher``): a teacher (``kws_train.teachers``: a kws bundle on our
features, or a foreign model on the augmented waveform itself) scores each augmented dataset
clip as the student sees it, and its target becomes ``distill_weight`` of those posteriors plus
the rest of the one-hot label (soft targets, categorical cross-entropy). The teachers are
competent on Speech Commands clips (command words and other words), so only those rows are
taught; rows made to be ``_unknown_`` or ``_silence_`` (silence and noise, partial words,
running-speech windows, embedded commands, mined windows the teacher itself may fire on) keep
their hard label: teachers trained on clips alone call read speech a command word and loud
silence a word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kws.features import FrontEnd
from kws.eval.testaudio import speech_bounds
from kws_train.augment import Augmenter
from kws_train.teachers import TargetCache, load_teacher
from kws.data.speech_commands import fit_length


def features(frontend: FrontEnd, waves: np.ndarray) -> np.ndarray:
    """``(n, samples)`` clips -> ``(n, frames, dim)`` features, exactly ``FrontEnd.compute``."""
    frames = frontend.num_frames(waves.shape[1])
    out = np.empty((len(waves), frames, frontend.dim), np.float32)
    for i, wave in enumerate(waves):
        out[i] = frontend.compute(wave)
    return out


# What a row of an epoch plan asks for: the clip itself, a fresh silence clip, only the head
# or tail of the clip (a word entering or leaving the window), a window of negative source
# ``index``, or the clip's word inside running speech; all but CLIP are labelled by kind.
CLIP, SILENCE_CLIP, PARTIAL, NEGATIVE, EMBEDDED = 0, 1, 2, 3, 4


@dataclass
class NegativeSource:
    """Decoded files of one negative source and its draws per epoch."""

    files: list[np.ndarray]
    draws: int
    context: bool

    def window(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``length``-sample window, files weighted by length (short ones padded)."""
        sizes = np.array([max(len(f), length) for f in self.files], dtype=np.float64)
        audio = self.files[rng.choice(len(self.files), p=sizes / sizes.sum())]
        start = int(rng.integers(0, max(1, len(audio) - length + 1)))
        return fit_length(audio[start:start + length], length)


def epoch_plan(targets: np.ndarray, num_classes: int, silence_label: int, unknown_label: int,
               clips_per_class: int, partials: int, rng: np.random.Generator,
               negatives: list[int] = (), embedded: int = 0) -> np.ndarray:
    """One balanced epoch, shuffled: rows of ``(clip index, kind)``.

    ``clips_per_class`` rows per class (silence included), plus ``partials`` partial-word
    rows, ``negatives[i]`` windows of negative source ``i`` and ``embedded`` words inside
    speech. Scarce classes are drawn with replacement (augmentation makes the repeats differ);
    classes with no clips at all are left out rather than failing.
    """
    parts = [np.stack([np.zeros(clips_per_class, int), np.full(clips_per_class, SILENCE_CLIP)], 1)]
    for label in range(num_classes):
        pool = np.flatnonzero(targets == label)
        if label != silence_label and len(pool):
            picked = rng.choice(pool, clips_per_class, replace=len(pool) < clips_per_class)
            parts.append(np.stack([picked, np.full(clips_per_class, CLIP)], 1))
    words = np.flatnonzero((targets != silence_label) & (targets != unknown_label))
    for count, kind in ((partials, PARTIAL), (embedded, EMBEDDED)):
        if count and len(words):
            picked = rng.choice(words, count, replace=len(words) < count)
            parts.append(np.stack([picked, np.full(count, kind)], 1))
    for source, count in enumerate(negatives):
        parts.append(np.stack([np.full(count, source), np.full(count, NEGATIVE)], 1))
    plan = np.concatenate(parts)
    return plan[rng.permutation(len(plan))]


class Teacher:
    """Soft targets: ``weight`` of a teacher's posteriors (``kws_train.teachers.load_teacher``)
    plus ``1 - weight`` of the one-hot label, on the rows that are taught and where the teacher's
    top class is the label; with a ``cache``, a batch's posteriors are read back instead of run
    again (``kws_train.teachers.TargetCache``).

    Where the teacher's top class is another, the label wins: the clips are labelled by the
    people who said them, and what a teacher gets wrong is where it is not competent (KWT-1
    through an 8-kHz link: 86% of new speakers' words right, where the student hears 91%;
    ``python -m kws_train.teachers probe``). A student taught everywhere heard 28% of the 8-kHz
    validation stream at equal false alarms, where its starting point heard 74% (train/README.md).
    """

    def __init__(self, path: str, labels: list[str], weight: float, temperature: float = 1.0,
                 cache: TargetCache | None = None):
        self.model = load_teacher(path, labels, temperature)
        self.weight, self.classes, self.cache = weight, len(labels), cache

    def __call__(self, waves: np.ndarray, x: np.ndarray, y: np.ndarray, taught: np.ndarray,
                 seed: np.ndarray) -> np.ndarray:
        """Targets for the batch ``seed`` (waveforms ``waves``, features ``x``, labels ``y``);
        rows not ``taught`` keep their label."""
        out = np.eye(self.classes, dtype=np.float32)[y]
        if taught.any():
            soft = self.cache.get(seed) if self.cache else None
            if soft is None or len(soft) != taught.sum():
                soft = self.model(waves[taught], x[taught])
                if self.cache:
                    self.cache.put(seed, soft)
            right = soft.argmax(1) == y[taught]
            rows = np.flatnonzero(taught)[right]
            out[rows] = self.weight * soft[right] + (1 - self.weight) * out[rows]
        return out


class BatchMaker:
    """Turns an epoch plan's rows into an augmented ``(features, labels)`` batch; with a
    ``teacher``, the labels are its soft targets ``(batch, classes)``."""

    def __init__(self, waves: np.ndarray, targets: np.ndarray, frontend: FrontEnd,
                 augmenter: Augmenter, silence_label: int, unknown_label: int,
                 negatives: list[NegativeSource] = (), embedded_gap: tuple[int, int] = (0, 0),
                 teacher: Teacher | None = None):
        self.waves, self.targets = waves, targets
        self.frontend, self.augmenter = frontend, augmenter
        self.silence_label, self.unknown_label = silence_label, unknown_label
        self.bounds = [speech_bounds(w, frontend.sample_rate) for w in waves]
        self.negatives = list(negatives)
        speech = [f for source in self.negatives if source.context for f in source.files]
        self.context = np.concatenate(speech) if speech else None
        self.embedded_gap = embedded_gap
        self.teacher = teacher

    def __call__(self, rows: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        length = self.waves.shape[1]
        x = np.empty((len(rows), self.frontend.num_frames(length), self.frontend.dim), np.float32)
        y = np.empty(len(rows), np.int32)
        waves = np.empty((len(rows), length), np.float32)  # what a foreign teacher hears
        for row, (index, kind) in enumerate(rows):
            if kind == SILENCE_CLIP:
                wave, y[row] = self.augmenter.silence(length, rng), self.silence_label
            elif kind == PARTIAL:
                wave = self.augmenter.partial(self.waves[index], self.bounds[index], rng)
                y[row] = self.unknown_label
            elif kind == NEGATIVE:
                window = self.negatives[index].window(length, rng)
                wave, y[row] = self.augmenter.waveform(window, rng), self.unknown_label
            elif kind == EMBEDDED:
                wave = self.augmenter.embedded(self.waves[index], self.bounds[index], self.context,
                                               self.embedded_gap, rng)
                y[row] = self.unknown_label
            else:
                wave, y[row] = self.augmenter.waveform(self.waves[index], rng), self.targets[index]
            waves[row] = wave
            x[row] = self.augmenter.spectrogram(self.frontend.compute(wave), rng)
        return (x, y) if self.teacher is None else (x, self.teacher(waves, x, y, rows[:, 1] == CLIP, seed))


def training_dataset(maker: BatchMaker, num_classes: int, clips_per_class: int, partials: int,
                     batch_size: int, seed: int, first_epoch: int,
                     epochs: int, embedded: int = 0) -> tuple[tf.data.Dataset, int]:
    """Batches for epochs ``first_epoch .. epochs-1`` and the number of steps per epoch."""

    negatives = [source.draws for source in maker.negatives]
    embedded = embedded if maker.context is not None else 0

    def plan(epoch: int) -> np.ndarray:
        return epoch_plan(maker.targets, num_classes, maker.silence_label, maker.unknown_label,
                          clips_per_class, partials, np.random.default_rng([seed, epoch]),
                          negatives, embedded)

    steps = max(1, len(plan(0)) // batch_size)

    def plans():
        for epoch in range(first_epoch, epochs):
            order = plan(epoch)
            for step in range(steps):
                yield order[step * batch_size:(step + 1) * batch_size], [seed, epoch, step]

    frames = maker.frontend.num_frames(maker.waves.shape[1])
    dim = maker.frontend.dim
    soft = maker.teacher is not None

    def build(rows, batch_seed):
        x, y = tf.numpy_function(maker, [rows, batch_seed], [tf.float32, tf.float32 if soft else tf.int32],
                                 stateful=False)
        x.set_shape([None, frames, dim])
        y.set_shape([None, num_classes] if soft else [None])
        return x, y

    data = tf.data.Dataset.from_generator(plans, output_signature=(
        tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([3], tf.int64)))
    data = data.map(build, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.prefetch(tf.data.AUTOTUNE), steps
