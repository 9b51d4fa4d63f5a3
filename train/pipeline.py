"""The tf.data input pipeline: balanced epochs of augmented clips -> FrontEnd features.

Decoded clips stay in memory (13k one-second clips are 0.8 GB as float32, decoded once per
run in seconds), so an epoch costs only augmentation and ``FrontEnd.compute`` (~0.2 ms a
clip): the features come from the one front end, never a re-implementation. Each batch is
built in numpy inside ``tf.numpy_function`` (parallel map, prefetch) from a seed derived from
``(seed, epoch, batch)``, so a run and its resumption see the same data.

Validation and test features are computed once, without augmentation, and cached as arrays.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kws.features import FrontEnd
from train.augment import Augmenter


def features(frontend: FrontEnd, waves: np.ndarray) -> np.ndarray:
    """``(n, samples)`` clips -> ``(n, frames, dim)`` features, exactly ``FrontEnd.compute``."""
    frames = frontend.num_frames(waves.shape[1])
    out = np.empty((len(waves), frames, frontend.dim), np.float32)
    for i, wave in enumerate(waves):
        out[i] = frontend.compute(wave)
    return out


def epoch_indices(targets: np.ndarray, num_classes: int, silence_label: int,
                  clips_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """One balanced epoch: ``clips_per_class`` clip indices per class, ``-1`` for a silence clip.

    Scarce classes are drawn with replacement (augmentation makes the repeats differ);
    classes with no clips at all are left out rather than failing.
    """
    parts = [np.full(clips_per_class, -1)]
    for label in range(num_classes):
        if label == silence_label:
            continue
        pool = np.flatnonzero(targets == label)
        if len(pool):
            parts.append(rng.choice(pool, clips_per_class, replace=len(pool) < clips_per_class))
    return rng.permutation(np.concatenate(parts))


class BatchMaker:
    """Turns clip indices into an augmented ``(features, labels)`` batch."""

    def __init__(self, waves: np.ndarray, targets: np.ndarray, frontend: FrontEnd,
                 augmenter: Augmenter, silence_label: int):
        self.waves, self.targets = waves, targets
        self.frontend, self.augmenter = frontend, augmenter
        self.silence_label = silence_label

    def __call__(self, indices: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        length = self.waves.shape[1]
        x = np.empty((len(indices), self.frontend.num_frames(length), self.frontend.dim), np.float32)
        y = np.empty(len(indices), np.int32)
        for row, index in enumerate(indices):
            if index < 0:
                wave, y[row] = self.augmenter.silence(length, rng), self.silence_label
            else:
                wave = self.augmenter.waveform(self.waves[index], rng)
                y[row] = self.targets[index]
            x[row] = self.augmenter.spectrogram(self.frontend.compute(wave), rng)
        return x, y


def training_dataset(maker: BatchMaker, num_classes: int, clips_per_class: int,
                     batch_size: int, seed: int, first_epoch: int,
                     epochs: int) -> tuple[tf.data.Dataset, int]:
    """Batches for epochs ``first_epoch .. epochs-1`` and the number of steps per epoch."""
    per_epoch = clips_per_class * (1 + sum(
        1 for c in range(num_classes) if c != maker.silence_label and (maker.targets == c).any()))
    steps = max(1, per_epoch // batch_size)

    def plans():
        for epoch in range(first_epoch, epochs):
            order = epoch_indices(maker.targets, num_classes, maker.silence_label,
                                  clips_per_class, np.random.default_rng([seed, epoch]))
            for step in range(steps):
                yield order[step * batch_size:(step + 1) * batch_size], [seed, epoch, step]

    frames = maker.frontend.num_frames(maker.waves.shape[1])
    dim = maker.frontend.dim

    def build(indices, batch_seed):
        x, y = tf.numpy_function(maker, [indices, batch_seed], [tf.float32, tf.int32],
                                 stateful=False)
        x.set_shape([None, frames, dim])
        y.set_shape([None])
        return x, y

    data = tf.data.Dataset.from_generator(plans, output_signature=(
        tf.TensorSpec([None], tf.int64), tf.TensorSpec([3], tf.int64)))
    data = data.map(build, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.prefetch(tf.data.AUTOTUNE), steps
