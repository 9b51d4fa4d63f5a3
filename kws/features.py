"""The one feature front end: log-mel or MFCC frames, for whole clips and for streams.

Training calls ``FrontEnd.compute`` on whole clips; the streaming detector pushes audio
through ``FrontEnd.incremental()`` (``IncrementalFeatures``), which computes only the frames that new samples complete.
Both go through ``FrontEnd.frames_to_features``, so they cannot disagree.

Framing follows ``librosa`` with ``center=False``: frame ``t`` covers samples
``[t * hop, t * hop + window)``, the FFT size equals the window length (30 ms = 480 samples
at 16 kHz) and the window is a periodic Hann. A one-second clip gives
``1 + (16000 - 480) // 160 = 98`` frames. Values are in dB (``10 * log10(power)``,
floored at -100 dB), as ``librosa.power_to_db(..., top_db=None)``; MFCC is the orthonormal
DCT-II of those, as ``librosa.feature.mfcc``.
"""

from __future__ import annotations

import numpy as np

from kws.config import FeatureConfig
from kws.units import frame_count, ms_to_samples

AMIN = 1e-10  # power floor before the log: -100 dB


def mel_basis(params: FeatureConfig, sample_rate: int) -> np.ndarray:
    """The ``(n_mels, window // 2 + 1)`` mel filterbank, from librosa (Slaney scale and norm).

    Imported lazily: librosa takes over a second to import, so trained bundles carry this
    matrix and the streaming path never needs librosa.
    """
    from librosa.filters import mel

    window = ms_to_samples(params.window_ms, sample_rate)
    return mel(sr=sample_rate, n_fft=window, n_mels=params.n_mels,
               fmin=params.fmin, fmax=params.fmax).astype(np.float32)


class FrontEnd:
    """Turns audio into feature frames; see the module docstring for the exact definition."""

    def __init__(self, params: FeatureConfig, sample_rate: int,
                 basis: np.ndarray | None = None):
        self.params = params
        self.sample_rate = sample_rate
        self.window = ms_to_samples(params.window_ms, sample_rate)
        self.hop = ms_to_samples(params.stride_ms, sample_rate)
        self.basis = mel_basis(params, sample_rate) if basis is None else basis
        expected = (params.n_mels, self.window // 2 + 1)
        if self.basis.shape != expected:
            raise ValueError(f"mel basis has shape {self.basis.shape}, expected {expected}")
        # Periodic Hann, as scipy.signal.get_window('hann', n) and librosa use.
        self._hann = np.hanning(self.window + 1)[:-1].astype(np.float32)
        # float64 products: the result must not depend on how many frames share one matmul.
        self._basis_t = np.ascontiguousarray(self.basis.T, dtype=np.float64)
        self._dct = None
        if params.kind == "mfcc":
            from scipy.fft import dct

            # DCT-II is linear: keep it as a matrix so a frame costs one small matmul.
            eye = np.eye(params.n_mels, dtype=np.float64)
            self._dct = dct(eye, type=2, norm="ortho", axis=-1)[:, :params.n_mfcc]

    @property
    def dim(self) -> int:
        return self.params.dim

    def num_frames(self, n_samples: int) -> int:
        return frame_count(n_samples, self.window, self.hop)

    def frames_to_features(self, frames: np.ndarray) -> np.ndarray:
        """``(n, window)`` raw sample frames -> ``(n, dim)`` float32 features."""
        spectrum = np.fft.rfft(frames * self._hann, axis=-1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        db = 10.0 * np.log10(np.maximum(power @ self._basis_t, AMIN))
        return (db if self._dct is None else db @ self._dct).astype(np.float32)

    def compute(self, samples: np.ndarray) -> np.ndarray:
        """Features of a whole clip: ``(num_frames(len(samples)), dim)`` float32."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        n = self.num_frames(len(samples))
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Overlapping frames as a strided view. Built directly: sliding_window_view costs
        # ~40 us a call, more than the FFT of the one or two frames a streaming chunk holds.
        step = samples.itemsize
        frames = np.ndarray((n, self.window), np.float32, samples, 0, (self.hop * step, step))
        return self.frames_to_features(frames)

    def incremental(self) -> "IncrementalFeatures":
        """A fresh incremental extractor sharing this front end's parameters."""
        return IncrementalFeatures(self)


class IncrementalFeatures:
    """Incremental features: push any number of samples, get the frames they complete.

    Keeps at most one window of not-yet-framed samples; frames already returned are never
    computed again. The concatenation of everything ``push`` returns equals
    ``FrontEnd.compute`` on the concatenated input.
    """

    def __init__(self, frontend: FrontEnd):
        self.frontend = frontend
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; return ``(k, dim)`` features of the ``k`` newly completed frames."""
        buffer = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        features = self.frontend.compute(buffer)
        self._pending = buffer[len(features) * self.frontend.hop:]
        return features

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
