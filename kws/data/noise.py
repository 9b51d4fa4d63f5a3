"""Background noise as a source of random stretches, and silence clips drawn from it.

Training (``kws_train.augment.Augmenter``, which mixes this noise into word clips) and
evaluation (``kws.eval.clips``, whose data may have no ``_silence_`` clips) draw silence the
same way: background noise at levels drawn over the whole range the official test uses (its
``_silence_`` clips are loud, RMS up to ~0.3).
"""

from __future__ import annotations

import numpy as np

from kws.config import AugmentConfig


def rms(x: np.ndarray) -> float:
    """Root mean square, accumulated in float64."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A value drawn uniformly on a log scale between ``low`` and ``high`` (floored at 1e-6)."""
    low, high = max(low, 1e-6), max(high, 1e-6)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class NoiseBed:
    """Random stretches of background recordings; parameters from ``train.augment``."""

    def __init__(self, params: AugmentConfig, noises: list[np.ndarray], sample_rate: int):
        self.params = params
        # Without background recordings, white noise keeps silence and mixing possible.
        self.noises = [n for n in noises if len(n) and rms(n) > 0] or \
            [np.random.default_rng(0).standard_normal(sample_rate * 10).astype(np.float32)]

    def noise(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """A random stretch of a random recording, scaled to RMS 1."""
        source = self.noises[rng.integers(len(self.noises))]
        if len(source) < length:
            source = np.tile(source, -(-length // len(source)))
        start = rng.integers(len(source) - length + 1)
        piece = source[start:start + length]
        return (piece / max(rms(piece), 1e-8)).astype(np.float32)

    def silence(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """One silence clip: background noise at a log-uniform level in ``silence_rms``."""
        level = log_uniform(rng, *self.params.silence_rms)
        return np.clip(self.noise(length, rng) * level, -1.0, 1.0)


def silence_clips(bed: NoiseBed, count: int, length: int, seed: int) -> np.ndarray:
    """``count`` reproducible silence clips (validation and evaluation use a fixed seed)."""
    rng = np.random.default_rng(seed)
    return np.stack([bed.silence(length, rng) for _ in range(count)]) if count else \
        np.zeros((0, length), np.float32)
