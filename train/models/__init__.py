"""Architectures, one module each, registered by name for ``kws train --arch``.

Every architecture maps normalised ``(frames, dim)`` features to a feature vector; ``build``
adds what all share: the input, a ``Normalization`` layer adapted on training features (so
the runtime feeds raw ``FrontEnd`` output) and the softmax over the labels.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from kws.config import ARCHITECTURES as NAMES
from kws.config import TrainConfig
from kws.errors import KwsError

# name -> body(x, config) -> tensor
ARCHITECTURES: dict[str, Callable] = {}
# Keras' default 0.99 made validation collapse to one class for the first epochs at
# ~100 steps per epoch (TRAINING_NOTES); 0.9 tracks the statistics fast enough.
BN_MOMENTUM = 0.9


def register(name: str) -> Callable:
    def add(body: Callable) -> Callable:
        ARCHITECTURES[name] = body
        return body
    return add


def build(arch: str, sample: np.ndarray, num_classes: int, config: TrainConfig) -> keras.Model:
    """The model for ``arch``; ``sample`` is ``(n, frames, dim)`` raw training features."""
    if arch not in ARCHITECTURES:
        raise KwsError(f"unknown architecture {arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    inputs = keras.Input(shape=sample.shape[1:], name="features")
    norm = keras.layers.Normalization(axis=-1, name="normalise")
    norm.adapt(sample)
    x = ARCHITECTURES[arch](norm(inputs), config)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="posteriors")(x)
    return keras.Model(inputs, outputs, name=arch)


# Importing the modules registers them.
from kws_train.models import bilstm, cnn, dscnn, lstm, tcresnet  # noqa: E402,F401

assert set(ARCHITECTURES) == set(NAMES), f"kws.config.ARCHITECTURES {NAMES} != modules {sorted(ARCHITECTURES)}"
