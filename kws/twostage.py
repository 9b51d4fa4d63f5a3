"""Two-stage detection: the detector's detections confirmed by the verifier before they are reported.

``VerifiedDetector`` wraps a built ``Detector`` without changing it: it keeps the last few
seconds of model-rate audio the detector consumed (its source's ``read`` is observed), and
each detection the detector makes becomes a candidate. A candidate at stream time ``t`` is
verified on the ``verifier.window_seconds`` of audio ending at ``t + delay`` (so with a delay
it waits until that audio has arrived, in a later ``process`` call) and reported, at
``t + delay``, only when ``verifier.confirm`` reaches ``threshold``. A rejected candidate
still counts for the posterior's refractory time and re-arming, exactly as measured by
``kws_train.verifier_eval``.

    detector = build_detector(bundle, config, input_rate=rate)  # verified when configured

``build_detector`` is how every user of the streaming path (listen, replay, the API,
eval-stream) gets its detector, so all of them decide alike.
"""

from __future__ import annotations

import time as _time

import numpy as np

from kws.detector import Detection, Detector
from kws.verifier import SAMPLE_RATE, Verifier


class AudioHistory:
    """The latest ``capacity`` samples of a stream, addressed by absolute sample index."""

    def __init__(self, capacity: int):
        self._buffer = np.zeros(capacity, dtype=np.float32)
        self.count = 0  # samples seen since the start

    def extend(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32)[-len(self._buffer):]
        n, cap = len(samples), len(self._buffer)
        if not n:
            return
        start = self.count % cap
        first = min(n, cap - start)
        self._buffer[start:start + first] = samples[:first]
        self._buffer[:n - first] = samples[first:]
        self.count += len(samples)

    def window(self, end: int, length: int) -> np.ndarray:
        """Samples ``[end - length, end)`` (zeros for what is older than the history holds)."""
        cap = len(self._buffer)
        end = min(end, self.count)
        start = max(end - length, self.count - cap, 0)
        idx = np.arange(start, end) % cap
        out = np.zeros(length, dtype=np.float32)
        out[length - (end - start):] = self._buffer[idx]
        return out


class _ObservedSource:
    """The detector's ``SampleSource``, with every read also copied into ``history``."""

    def __init__(self, source, history: AudioHistory):
        self._source = source
        self.history = history

    def __getattr__(self, name):
        return getattr(self._source, name)

    def read(self) -> np.ndarray:
        samples = self._source.read()
        self.history.extend(samples)
        return samples


class VerifiedDetector:
    """A ``Detector`` whose detections pass the verifier first (see the module docstring).

    It offers the detector's interface (``write``, ``wait``, ``process``, ``lost_samples``,
    ``thresholds``, ...); ``flush`` verifies what is still waiting for its delay at the end of
    a file. ``verify_seconds`` collects the time each verification took.
    """

    def __init__(self, detector: Detector, verifier: Verifier, threshold: float, delay: float = 0.0):
        if detector.window.frontend.sample_rate != SAMPLE_RATE:
            raise ValueError(f"the verifier needs {SAMPLE_RATE} Hz audio")
        self.detector = detector
        self.verifier = verifier
        self.threshold = threshold
        self.delay = delay
        # One read can drain the whole ring (resampled to the model's rate).
        ring = detector.source.ring.capacity * SAMPLE_RATE // detector.input_rate + 1
        capacity = verifier.window_samples + round(delay * SAMPLE_RATE) + ring
        self.history = AudioHistory(capacity)
        detector.source = _ObservedSource(detector.source, self.history)
        self.pending: list[Detection] = []
        self.rejected: list[tuple[Detection, float]] = []
        self.verify_seconds: list[float] = []

    _OWN = {"detector", "verifier", "threshold", "delay", "history", "pending", "rejected", "verify_seconds"}

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def __setattr__(self, name, value):
        # ``on_hop``, ``timings`` and the like belong to the wrapped detector.
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.detector, name, value)

    def _verify(self, candidate: Detection) -> Detection | None:
        end = round((candidate.time + self.delay) * SAMPLE_RATE)
        start = _time.perf_counter()
        p = self.verifier.confirm(self.history.window(end, self.verifier.window_samples), candidate.word)
        self.verify_seconds.append(_time.perf_counter() - start)
        if p < self.threshold:
            self.rejected.append((candidate, p))
            return None
        return Detection(candidate.time + self.delay, candidate.word, candidate.score)

    def process(self) -> list[Detection]:
        self.pending += self.detector.process()
        ready = [c for c in self.pending
                 if round((c.time + self.delay) * SAMPLE_RATE) <= self.history.count]
        self.pending = self.pending[len(ready):]
        return [d for d in map(self._verify, ready) if d is not None]

    def flush(self) -> list[Detection]:
        """Verify the candidates still waiting for audio (end of a file)."""
        ready, self.pending = self.pending, []
        return [d for d in map(self._verify, ready) if d is not None]


def build_detector(bundle, config, input_rate: int | None = None) -> Detector | VerifiedDetector:
    """The streaming detector for ``bundle``: behind its verifier when ``verifier.enabled`` and
    one loads (every word's first-stage threshold then ``verifier.candidate_threshold``),
    otherwise the first stage alone."""
    settings = config.verifier
    verifier = Verifier.load(bundle.path, config.detector.num_threads) if settings.enabled else None
    if verifier is None:
        return Detector.from_bundle(bundle, config, input_rate=input_rate)
    from kws.posterior import uniform_threshold

    config = uniform_threshold(config, bundle.words, settings.candidate_threshold)
    return VerifiedDetector(Detector.from_bundle(bundle, config, input_rate=input_rate), verifier,
                            settings.threshold, settings.delay_ms / 1000)
