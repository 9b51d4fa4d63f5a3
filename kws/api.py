"""The Python API: a keyword spotter to embed in an application.

::

    import kws

    spotter = kws.Spotter()                  # the shipped model, config.yaml's defaults
    for d in spotter.process(samples):       # float32 or int16 mono at spotter.sample_rate
        print(d.time, d.word, d.score)
    for d in spotter.flush():                # the stream ends: its last word is heard too
        print(d.time, d.word, d.score)
    spotter.scores                           # latest smoothed score per word
    for d in spotter.listen():               # the microphone, as `kws listen`
        ...

``Spotter`` is a thin owner of one detector (``Detector.from_bundle``): the
very stages ``kws listen`` and ``kws replay`` run, so the API detects exactly what the command
line does. ``process`` pushes samples through the producer side (``write``) in pieces the
ring buffer holds and drains them (``process``); detections do not depend on how the audio
is cut into calls. A word is reported about a second after it begins (once the window has
heard all of it), so a word at the very end of the samples waits for more: ``flush`` ends the
stream with a window of silence (``kws.detector.end_silence``) and returns what it completes,
as ``kws replay`` does at the end of every file.

Near misses: a word whose smoothed score rose to ``near_miss`` times its threshold or more
and fell back without reaching its threshold is a ``NearMiss`` (its peak score and when it
peaked), kept in ``spotter.near_misses`` and passed to ``on_near_miss``: a user whose word is
missed sees how close it came, and which threshold to lower.
"""

from __future__ import annotations

import collections
import math
import threading
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from kws.audio.ring import RingBuffer
from kws.bundle import load_bundle
from kws.config import MAX_SAMPLE_RATE, Config, load_config, with_overrides
from kws.detector import Detection, Detector, end_silence
from kws.errors import KwsError
from kws.posterior import with_thresholds, word_thresholds
from kws.resources import find_model
from kws.units import block_samples

LEVEL_FLOOR_DB = -90.0  # the input level reported for digital silence
MIN_SAMPLE_RATE = 8000  # telephone speech; below it the model's band is gone, not resampled
# Float samples reaching this (30 dB over full scale) are another scale: int16 values as float,
# whose speech peaks in the thousands. Overs of a float file or a damaged MP3's decoder (4.3
# seen) pass; int16 values this small are near-silence, where nothing is missed.
FLOAT_LIMIT = 32.0


class InputError(KwsError, ValueError):
    """A bad argument or bad samples: a ``ValueError`` for Python callers, one line from the CLI."""


@dataclass(frozen=True)
class NearMiss:
    time: float  # stream seconds at which the score peaked
    word: str
    score: float  # the peak smoothed score, below ``threshold``
    threshold: float


@dataclass(frozen=True)
class Update:
    """What happened in one step of a stream (one ``feed`` call, one poll of the microphone)."""

    time: float  # stream seconds consumed so far
    level_db: float  # RMS level of this step's input, dBFS (LEVEL_FLOOR_DB for silence)
    scores: dict[str, float]  # latest smoothed score per word
    thresholds: dict[str, float]
    detections: list[Detection]
    near_misses: list[NearMiss]


class NearMisses:
    """Per word, a score that rose to ``ratio * threshold`` and fell back without reaching the
    threshold: one ``NearMiss`` (at its peak) when it falls below ``ratio * threshold`` again.

    Pure, like ``kws.posterior``: fed the smoothed scores of each hop with stream time.
    """

    def __init__(self, labels: list[str], thresholds: dict[str, float], ratio: float = 0.5):
        self.words = list(thresholds)
        self._index = np.array([labels.index(w) for w in self.words], dtype=int)
        self._threshold = np.array([thresholds[w] for w in self.words], dtype=np.float64)
        self._floor = ratio * self._threshold
        self._peak = np.full(len(self.words), -np.inf)
        self._peak_time = np.zeros(len(self.words))
        self._tracking = False  # some word's peak is being followed

    def update(self, time: float, smoothed: np.ndarray) -> list[NearMiss]:
        scores = np.asarray(smoothed, dtype=np.float64)[self._index]
        rising = scores >= self._floor
        if not self._tracking and not rising.any():
            return []  # the common hop, kept cheap: it runs 50 times a second
        active = self._peak > -np.inf
        higher = rising & (scores > self._peak)
        self._peak = np.where(higher, scores, self._peak)
        self._peak_time = np.where(higher, time, self._peak_time)
        ended = active & ~rising
        found = [NearMiss(float(self._peak_time[i]), self.words[i], float(self._peak[i]),
                          float(self._threshold[i]))
                 for i in np.flatnonzero(ended & (self._peak < self._threshold))]
        self._peak[ended] = -np.inf
        self._tracking = bool((self._peak > -np.inf).any())
        return found


class Spotter:
    """A streaming keyword spotter: samples in, ``Detection``s out.

    ``model``: a bundle directory (default: ``detector.model`` of the config, the shipped
    model). ``config``: a YAML file laid over ``config.yaml``, or a ``Config``. ``thresholds``:
    per word (``{"up": 0.9}``, laid over the config's and the bundle's) or one number for every
    word. ``sample_rate``: the rate of the samples you will pass (default: the model's;
    others are resampled). ``near_miss``: the fraction of a word's threshold its score must
    reach to count as a near miss (above 0, below 1); ``on_near_miss`` is called with each.
    A value out of range is an ``InputError`` (a ``ValueError``) naming it.
    """

    def __init__(self, model: str | Path | None = None, config: str | Path | Config | None = None,
                 thresholds: dict[str, float] | float | None = None, sample_rate: int | None = None,
                 near_miss: float = 0.5, on_near_miss: Callable[[NearMiss], object] | None = None):
        _check_arguments(sample_rate, near_miss)
        config = config if isinstance(config, Config) else load_config(config)
        if model is not None:
            config = with_overrides(config, {"detector.model": str(Path(model).expanduser().resolve())})
        self.bundle = load_bundle(find_model(config.model_path), config)
        # The one check of user thresholds, shared with --threshold (kws.posterior).
        self.config = with_thresholds(config, self.bundle.words, thresholds)
        self.model_rate = self.config.audio.sample_rate
        self.sample_rate = self.model_rate if sample_rate is None else int(sample_rate)
        self.near_miss = near_miss
        self.on_near_miss = on_near_miss
        self.near_misses: collections.deque[NearMiss] = collections.deque(maxlen=100)
        self._new_near_misses: list[NearMiss] = []
        self._use(self.sample_rate)

    def _use(self, input_rate: int) -> None:
        """A fresh detector for audio at ``input_rate``: the stream starts again at time 0."""
        self.detector = Detector.from_bundle(self.bundle, self.config, input_rate=input_rate)
        self._tracker = NearMisses(self.detector.posterior.labels, self.detector.thresholds, self.near_miss)
        self.detector.on_hop = self._hop
        self._samples = 0
        self._chunk = max(1, self.detector.source.ring.capacity // 2)

    def _hop(self, time: float, smoothed: np.ndarray) -> None:
        for miss in self._tracker.update(time, smoothed):
            self.near_misses.append(miss)
            self._new_near_misses.append(miss)
            if self.on_near_miss is not None:
                self.on_near_miss(miss)

    # -- what the spotter knows ------------------------------------------------------------

    @property
    def words(self) -> list[str]:
        return list(self.detector.thresholds)

    @property
    def thresholds(self) -> dict[str, float]:
        """Each word's threshold (config per word, else the bundle's, else posterior.threshold)."""
        return self.detector.thresholds

    @property
    def scores(self) -> dict[str, float]:
        """The latest smoothed score of each word (before any audio: the lead-in's silence,
        ``kws.detector``)."""
        smoothed = self.detector.posterior.smoothed
        labels = self.detector.posterior.labels
        return {w: float(smoothed[labels.index(w)]) for w in self.words}

    @property
    def time(self) -> float:
        """Stream seconds consumed since the start (or the last ``reset``)."""
        return self._samples / self.detector.input_rate

    def set_thresholds(self, thresholds: dict[str, float] | float) -> None:
        """Change thresholds mid-stream (a slider moved): the stream goes on, and the next hop
        is decided with them. Checked as ``thresholds=`` is (``InputError`` otherwise); kept
        by ``reset`` and ``replay``."""
        try:
            self.config = with_thresholds(self.config, self.bundle.words, thresholds)
        except KwsError as err:
            raise InputError(str(err)) from None
        posterior = self.detector.posterior
        chosen = word_thresholds(self.bundle.words, self.bundle.thresholds, self.config.posterior)
        for i, label in enumerate(posterior.labels):
            if label in chosen:
                posterior.trigger.thresholds[i] = chosen[label]
        self._tracker = NearMisses(posterior.labels, self.detector.thresholds, self.near_miss)

    def reset(self) -> None:
        """Forget the stream: the next sample is time 0 (e.g. between unrelated recordings)."""
        self._use(self.detector.input_rate)

    # -- audio in --------------------------------------------------------------------------

    def process(self, samples: np.ndarray) -> list[Detection]:
        """Push mono samples (float32 in [-1, 1], or int16) at ``sample_rate``, any length;
        return the detections they complete, in order."""
        return self.feed(samples).detections

    def feed(self, samples: np.ndarray) -> Update:
        """``process``, returning everything the step showed (level, scores, near misses)."""
        samples = as_float32(samples)
        found: list[Detection] = []
        for start in range(0, len(samples), self._chunk):
            self.detector.write(samples[start:start + self._chunk])
            found += self.detector.process()
        self._samples += len(samples)
        return self._update(found, level_db(samples))

    def flush(self) -> list[Detection]:
        """End the stream: push one window of silence (``kws.detector.end_silence``) so that a
        word at the very end of the samples, or a clip shorter than a window, is heard; return
        the detections it completes. The silence counts in ``time``; call ``reset`` before an
        unrelated stream."""
        return self._flush().detections

    def _flush(self) -> Update:
        return self.feed(np.concatenate(list(end_silence(self.detector))))

    def _update(self, detections: list[Detection], level: float) -> Update:
        misses, self._new_near_misses = self._new_near_misses, []
        return Update(self.time, level, self.scores, self.thresholds, detections, misses)

    def replay(self, blocks: Iterable[np.ndarray], rate: int | None = None, realtime: bool = False,
               every: float = 0.1, pad: bool = False) -> Iterator[Update]:
        """Audio blocks (a file, as ``kws.audio.files.read_blocks`` gives it) at ``rate``:
        one ``Update`` per ``every`` seconds of audio; with ``realtime``, at the pace a sound
        card would deliver them. Starts a new stream (time 0). With ``pad``, the stream ends
        with ``flush`` (as ``kws replay``), so a last word, or a clip shorter than a window, is
        heard."""
        rate = rate or self.sample_rate
        if self._samples or rate != self.detector.input_rate:  # a fresh detector is already at time 0
            self._use(rate)
        started = _time.monotonic()
        pending: list[np.ndarray] = []
        waiting = 0
        for block in blocks:
            pending.append(as_float32(block))
            waiting += len(block)
            if waiting >= every * rate:
                if realtime:
                    _time.sleep(max(0.0, started + (self._samples + waiting) / rate - _time.monotonic()))
                yield self.feed(np.concatenate(pending))
                pending, waiting = [], 0
        if pending:
            yield self.feed(np.concatenate(pending))
        if pad:
            yield self._flush()  # digital silence: LEVEL_FLOOR_DB

    def listen(self, device: int | str | None = None, duration: float | None = None) -> Iterator[Detection]:
        """Detections from the microphone as they come, as ``kws listen`` (``device``: index or
        part of a name, default ``audio.device`` of the config, else the system's). Stops after
        ``duration`` seconds, or when the loop that iterates stops (``break``, Ctrl-C)."""
        for update in self.listen_updates(device, duration):
            yield from update.detections

    def listen_updates(self, device: int | str | None = None, duration: float | None = None,
                       stop: threading.Event | None = None) -> Iterator[Update]:
        """``listen``, one ``Update`` per poll of the microphone (about ten a second); also
        ends when ``stop`` is set (after the last audio is processed)."""
        from kws.audio.microphone import Microphone, capture_rate, find_input_device

        found = find_input_device(device if device is not None else self.config.audio.device)
        rate = capture_rate(found, self.model_rate)
        self._use(rate)
        level = RingBuffer(rate)  # tee for the level: the audio callback still only copies

        detector = self.detector

        def write(block: np.ndarray) -> None:
            detector.write(block)
            level.write(block)

        microphone = Microphone(found, rate, block_samples(self.config.audio.block_ms, rate), write)
        self.device = found
        self.microphone = microphone
        yield from _poll(self, microphone, level, duration, stop)

    @property
    def lost_samples(self) -> int:
        """Samples dropped since the stream started because processing fell behind (listen)."""
        return self.detector.lost_samples


def _poll(spotter: Spotter, microphone, level: RingBuffer, duration: float | None,
          stop: threading.Event | None = None) -> Iterator[Update]:
    """``kws.live.detections`` (the loop of ``kws listen``), with the level of each poll."""
    from kws.live import detections

    scratch = np.zeros(level.capacity, dtype=np.float32)
    for found in detections(spotter.detector, microphone, duration,
                            spotter.config.audio.stall_seconds, stop):
        n = level.read_into(scratch)
        spotter._samples += n
        yield spotter._update(found, level_db(scratch[:n]))


def _check_arguments(sample_rate, near_miss) -> None:
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
                                    or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE):
        raise InputError(f"sample_rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to "
                         f"{MAX_SAMPLE_RATE}, got {sample_rate!r}")
    if isinstance(near_miss, bool) or not isinstance(near_miss, (int, float)) or not 0 < near_miss < 1:
        raise InputError(f"near_miss is a fraction of a word's threshold, above 0 and below 1, got {near_miss!r}")


def as_float32(samples: np.ndarray) -> np.ndarray:
    """Mono samples as float32 in [-1, 1]: int16 is scaled by 1/32768; float passes as is, unless
    it reaches ``FLOAT_LIMIT`` (``InputError``: such audio would never be heard as speech)."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise InputError(f"expected mono samples (1-D), got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if not np.issubdtype(samples.dtype, np.floating):
        raise InputError(f"expected float32 or int16 samples, got {samples.dtype}")
    samples = samples.astype(np.float32, copy=False)
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if not peak < FLOAT_LIMIT:  # NaN too
        raise InputError(f"float samples reach {peak:g}, far outside [-1, 1]: int16 values passed as "
                         "float? pass them as int16, or divided by 32768")
    return samples


def level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (``LEVEL_FLOOR_DB`` for no samples or digital silence)."""
    if not len(samples):
        return LEVEL_FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(LEVEL_FLOOR_DB, 20 * math.log10(max(rms, 1e-10)))
