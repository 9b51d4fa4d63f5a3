"""One clip made into one training window: placed, cut to a piece.

The enrollment's own clip helpers, on top of ``kws_train.augment``, which perturbs a window once
it is made (speed included: ``kws_train.channels.speed``, at ``enroll.augment``'s levels, is the
one speed perturbation a positive gets). Each draws from the ``rng`` it is given, in a fixed
order: the same seed gives the same windows, so the same bundle.
"""

from __future__ import annotations

import numpy as np

from kws_train import synth


def place(word: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``word`` at a random place inside a ``length`` window (cut to fit)."""
    word = word[:length]
    out = np.zeros(length, np.float32)
    at = int(rng.integers(0, length - len(word) + 1))
    out[at:at + len(word)] = word
    return out


def trim(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wave`` without its leading and trailing silence; unchanged if that leaves nothing."""
    out = synth.trim(wave, sample_rate)
    return out if len(out) else wave


def fit(wave: np.ndarray, length: int) -> np.ndarray:
    from kws.data.speech_commands import fit_length

    return fit_length(np.asarray(wave, np.float32), length)


def positive(wave, augmenter, rng, length):
    """A training window of the word: anywhere in the window, perturbed."""
    return augmenter.waveform(place(wave, length, rng), rng, shift=False)


def partial(wave, augmenter, rng, length):
    """The head or the tail of the word alone (a quarter to six tenths of it): not the word."""
    keep = max(1, round(len(wave) * rng.uniform(0.25, 0.6)))
    piece = wave[:keep] if rng.random() < 0.5 else wave[-keep:]
    return augmenter.waveform(place(piece, length, rng), rng, shift=False)
