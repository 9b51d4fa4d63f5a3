"""Mining (``kws_train.enroll.mining``): every quarter-second window of the training speech is
scored by the model as trained so far, and the ones it takes most for an enrolled word come
back as ``_unknown_`` examples. The model here is a stand-in whose word score is the window's
loudness, so which windows are hard is known: those over a loud burst."""

from types import SimpleNamespace

import numpy as np

from kws.bundle import load_bundle
from kws.labels import UNKNOWN
from kws_train.enroll import mining
from kws_train.enroll.model import Base

SR = 16000


class _Loudness:
    """prefix -> suffix -> head of a model that hears ``lamp`` in proportion to loudness."""

    def predict(self, x, batch_size=None, verbose=0):
        if isinstance(x, list):                      # suffix: activations -> embedding
            return x[0]
        if x.ndim == 3:                              # prefix: features -> activations
            return [x.max(axis=(1, 2))[:, None]]
        level = 1 / (1 + np.exp(-(x[:, 0] - 0) / 5))  # head: embedding -> posteriors
        return np.stack([np.zeros_like(level), 1 - level, level], axis=1)


def _job(mined_windows: int):
    return SimpleNamespace(length=SR, sr=SR, words=["lamp"], index={"_silence_": 0, UNKNOWN: 1, "lamp": 2},
                           plan=SimpleNamespace(mined_windows=mined_windows, mined_copies=2))


def _base() -> Base:
    model = _Loudness()
    tune = SimpleNamespace(predict=lambda acts, **_: model.predict(model.predict(acts)))
    enrolled = SimpleNamespace(prefix=model, suffix=model, head=model, tune=tune)
    return Base(bundle=None, frontend=load_bundle("models/default").frontend(), model=enrolled)


def _speech() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 1e-4, 6 * SR).astype(np.float32)
    quiet[3 * SR:int(3.3 * SR)] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(0.3 * SR)) / SR)
    return [quiet]


def test_the_windows_the_model_hears_the_word_in_are_mined():
    windows = mining.hard_windows(_job(3), _base(), _speech())
    assert len(windows) == 3
    for w in windows:  # each holds the burst
        assert np.abs(w).max() > 0.4


def test_only_windows_above_the_level_count():
    windows = mining.hard_windows(_job(100), _base(), _speech())
    # of the 21 windows, those holding some of the burst: 0.3 s seen from 0.25-s hops
    assert 4 <= len(windows) <= 6 and all(np.abs(w).max() > 0.4 for w in windows)


def test_mined_windows_come_back_as_unknown_copies():
    augmenter = SimpleNamespace(waveform=lambda wave, rng: wave * 0.5)
    examples = mining.mined_examples(_job(3), [np.ones(SR, np.float32)] * 3, augmenter, np.random.default_rng(0))
    assert examples.labels == [1] * 6 and all(np.allclose(w, 0.5) for w in examples.waves)
