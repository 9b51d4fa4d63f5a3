"""The streaming detector: audio in, ``Detection`` events out. ``listen`` and ``replay`` share it.

Two sides, as with a sound card: the producer (the audio callback, or replay pushing a file in
sound-card-sized chunks) only calls ``write``, which copies into a ring buffer and nothing
else; the consumer calls ``process`` (in its own thread for a microphone), which drains the
ring and runs the stages::

    SampleSource   ring buffer; resampling to the model's rate when the input rate differs
    FeatureWindow  incremental features (only the frames new samples complete) kept in a
                   preallocated ring of the latest one-second window
    Classifier     LiteRT every ``detector.hop_ms``: the streaming model on the hop's new
                   frames (its state carried from hop to hop) when the bundle has one for
                   that hop, else the window model over the whole window
    Posterior      smoothing, thresholds, refractory time (``kws.posterior``)

A stream is heard as if it followed silence: before its first sample the stages hear a lead-in
of digital silence (a window of it, then a smoothing span of hops), so a word in its first
second is classified from the hops it is in and its score averaged over as many hops as later
on. Without it the first classification waited for a full window and averaged that one hop
alone: a word there scored its bare posterior (1.00 where later it fires at its threshold).

``Detector(source, window, classifier, posterior)`` wires stages it is given (tests wire
known ones); ``Detector.from_bundle`` builds them from a model bundle and the config. Every
stage is a public attribute, so the benchmark can time one on its own; setting
``Detector.timings`` to a ``StageTimings`` records each stage's cost inside ``process`` too.
Detections are deterministic in the audio: they do not depend on how it was chunked.

Live use::

    detector = Detector.from_bundle(bundle, config, input_rate=device_rate)
    # in the sound-card callback:  detector.write(indata[:, 0])
    while listening:                       # in the processing thread
        if detector.wait(0.1):
            for detection in detector.process():
                ...
"""

from __future__ import annotations

import json
import time as _time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from kws.audio.ring import RingBuffer
from kws.bundle import Bundle, BundleError, check_compatible
from kws.config import Config
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.labels import NON_WORDS
from kws.posterior import Posterior
from kws.units import frame_end_seconds, samples_to_seconds, seconds_to_samples


@dataclass(frozen=True)
class Detection:
    """A word heard, reported at the hop where its smoothed score reached its threshold.

    ``score`` is that hop's smoothed score of the word (its posterior averaged over the
    smoothing span, ``kws.posterior``): the value the threshold was compared with, so at least
    the threshold and, as the average climbs hop by hop, usually just above it. It tells that
    the word crossed, not how high its score went on to peak: waiting for the peak would delay
    every detection. How high a score rises is what ``kws.Spotter.scores`` (and the page's bars)
    show hop by hop; a near miss (``kws.api.NearMiss``) reports its peak. It means the same
    anywhere in a stream, its first second included (the lead-in of the module docstring).
    """

    # Stream seconds at which the detection fired: the end of the audio consumed so far, samples
    # lost on the way (a full ring buffer) included, so it stays true to the wall clock.
    time: float
    word: str
    score: float


@dataclass
class StageTimings:
    """Seconds per stage: features (with draining the ring and resampling) per ``process``
    call, classifier and posterior per hop."""

    features: list[float] = field(default_factory=list)
    classifier: list[float] = field(default_factory=list)
    posterior: list[float] = field(default_factory=list)


class SampleSource:
    """The ring buffer between the two sides, and consumer-side resampling.

    Resampling happens here, when the consumer reads, never in the producer's callback.
    """

    def __init__(self, capacity: int, input_rate: int, rate: int):
        self.input_rate = input_rate
        self.ring = RingBuffer(capacity)
        self._buffer = np.zeros(capacity, dtype=np.float32)
        self._resampler = None
        if input_rate != rate:
            import soxr

            self._resampler = soxr.ResampleStream(input_rate, rate, 1, dtype="float32")

    def write(self, chunk: np.ndarray) -> None:
        self.ring.write(chunk)

    def read(self) -> np.ndarray:
        """Everything waiting, at the model's rate (a view, valid until the next read)."""
        n = self.ring.read_into(self._buffer)
        samples = self._buffer[:n]
        if self._resampler is not None and n:
            samples = self._resampler.resample_chunk(samples)
        return samples


class FeatureWindow:
    """Feature frames of the stream so far, and the latest ``frames``-frame window.

    The window lives in a preallocated ``(2 * frames, dim)`` array in which every frame is
    stored twice, ``frames`` rows apart, so the latest window is always one contiguous slice:
    appending a frame costs two row copies, and nothing is shifted or recomputed.
    """

    def __init__(self, frontend: FrontEnd, frames: int, hop_frames: int):
        self.frontend = frontend
        self.frames = frames
        self.hop_frames = hop_frames
        self.incremental = frontend.incremental()
        self._rows = np.zeros((2 * frames, frontend.dim), dtype=np.float32)
        self.count = 0  # frames seen, the lead-in's included
        self.lead_in = 0  # frames of silence heard before the stream (``Detector``): time before 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Features ``(k, dim)`` of the frames that ``samples`` complete."""
        return self.incremental.push(samples)

    def append(self, frame: np.ndarray) -> bool:
        """Add one frame; return whether a classification is due (a full window, on a hop)."""
        slot = self.count % self.frames
        self._rows[slot] = frame
        self._rows[slot + self.frames] = frame
        self.count += 1
        return self.count >= self.frames and (self.count - self.frames) % self.hop_frames == 0

    @property
    def latest(self) -> np.ndarray:
        """The latest ``(frames, dim)`` features, oldest first (a view)."""
        start = self.count % self.frames
        return self._rows[start:start + self.frames]

    @property
    def end_time(self) -> float:
        """Stream seconds at the end of the last frame's samples."""
        fe = self.frontend
        return frame_end_seconds(self.count - 1 - self.lead_in, fe.window, fe.hop, fe.sample_rate)


class Detector:
    """Ring buffer -> features -> classifier every hop -> posterior -> ``Detection``s.

    ``classifier`` is a callable to class posteriors (``posterior.labels`` names them): from a
    ``(frames, dim)`` window (a ``kws.inference.Classifier``, or a stand-in in tests), or, when
    it has a ``step``, from the newest ``step`` frames, called every ``step`` frames from the
    first frame of the stream on (a ``kws.inference.StreamingClassifier``). ``int8`` only says
    which model the classifier runs, for messages.
    """

    def __init__(self, source: SampleSource, window: FeatureWindow,
                 classifier: Callable[[np.ndarray], np.ndarray], posterior: Posterior,
                 int8: bool = False):
        self.source = source
        self.window = window
        self.classifier = classifier
        self.posterior = posterior
        self.int8 = int8
        # Frames per streaming call: it must end on every hop, and the first window must end a
        # call (windows start on frame 0), so the step is the hop and divides the window.
        self.step = getattr(classifier, "step", None)
        if self.step is not None and (self.step != window.hop_frames or window.frames % self.step):
            raise KwsError(f"a streaming classifier of {self.step} frames a call cannot run hops of "
                           f"{window.hop_frames} frames over {window.frames}-frame windows")
        self.input_rate = source.input_rate
        fe = window.frontend
        self._hop_samples = max(1, min(window.hop_frames * fe.hop * self.input_rate // fe.sample_rate,
                                       source.ring.capacity // 2))
        self.timings: StageTimings | None = None
        # Called every hop with (stream seconds, smoothed posteriors, a fresh array each time):
        # eval-stream records them for its threshold table.
        self.on_hop: Callable[[float, np.ndarray], None] | None = None
        # Samples the ring dropped, and the stream seconds they add to every later time.
        self._lost_counted = 0
        self._lost_seconds = 0.0
        self._hear_silence()

    def _hear_silence(self) -> None:
        """The lead-in (module docstring): silence a hop at a time until the smoother has
        averaged a full span of it. Whole hops keep the stream's hops where they were without
        it (``FeatureWindow.append``); what the silence scores never fires."""
        window = self.window
        silence = np.zeros(window.hop_frames * window.frontend.hop, np.float32)
        pushed = heard = 0
        while heard < self.posterior.smoother.length:
            for probs, _ in self._hops(window.push(silence)):
                self.posterior.lead_in(probs)
                heard += 1
            pushed += window.hop_frames
        window.lead_in = pushed

    def _hops(self, frames: np.ndarray) -> Iterator[tuple[np.ndarray, float]]:
        """Append ``frames`` to the window; for each hop they complete, the classifier's
        posteriors and the seconds it took."""
        window, step = self.window, self.step
        for frame in frames:
            due = window.append(frame)
            if step is None:
                if not due:
                    continue
                t0 = _time.perf_counter()
                probs = self.classifier(window.latest)
            else:  # every step from the first frame on; a due hop always ends one
                if window.count % step:
                    continue
                t0 = _time.perf_counter()
                probs = self.classifier(window.latest[-step:])
                if not due:
                    continue
            yield probs, _time.perf_counter() - t0

    @classmethod
    def from_bundle(cls, bundle: Bundle, config: Config, input_rate: int | None = None) -> Detector:
        """The stages for ``bundle`` as ``config`` sets them up; audio arrives at ``input_rate``
        (default: the model's rate) and is resampled when that differs."""
        check_compatible(bundle, config)
        check_words(bundle, config)
        rate = config.audio.sample_rate
        input_rate = input_rate or rate
        source = SampleSource(max(1, seconds_to_samples(config.audio.ring_seconds, input_rate)),
                              input_rate, rate)
        frontend = bundle.frontend()
        frames = frontend.num_frames(config.audio.clip_samples)
        hop = config.hop_frames
        window = FeatureWindow(frontend, frames, hop)
        if config.detector.streaming and bundle.stream_step == hop and frames % hop == 0:
            int8 = False
            classifier = bundle.streaming_classifier(config.detector.num_threads)
            expected = (hop, frontend.dim)
        else:
            # Not every architecture quantises (the LSTM's int8 conversion fails): fall back to float.
            int8 = config.detector.int8 and bundle.has_int8
            classifier = bundle.classifier(config.detector.num_threads, int8)
            expected = (frames, frontend.dim)
        shape = classifier.input_shape
        if shape != expected or classifier.num_classes != len(bundle.labels):
            raise BundleError(f"{bundle.path}: model takes {shape} -> {classifier.num_classes} "
                              f"classes, but the bundle describes {expected} -> {len(bundle.labels)}")
        posterior = Posterior.from_config(bundle.labels, bundle.thresholds, config, bundle.smoothing_ms)
        return cls(source, window, classifier, posterior, int8=int8)

    @property
    def thresholds(self) -> dict[str, float]:
        """Each reportable word's threshold (words that can never fire are left out)."""
        return {label: float(t) for label, t in
                zip(self.posterior.labels, self.posterior.trigger.thresholds) if np.isfinite(t)}

    def write(self, chunk: np.ndarray) -> None:
        """Producer side: copy ``chunk`` (1-D float32) into the ring; never blocks or allocates."""
        self.source.write(chunk)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a hop of samples is waiting (or ``timeout`` seconds pass); return whether
        it is. A classification needs a whole hop anyway, so waking for less only costs calls."""
        return self.source.ring.wait(timeout, self._hop_samples)

    def ready(self) -> bool:
        """Whether a hop of samples is waiting: when the live loop (``wait``) would process."""
        return len(self.source.ring) >= self._hop_samples

    @property
    def lost_samples(self) -> int:
        """Samples dropped because the consumer fell behind."""
        return self.source.ring.lost

    def process(self) -> list[Detection]:
        """Consumer side: drain the ring, classify every hop it completes; return new detections.

        Samples the ring dropped while it was full lie after everything it held then, that is
        at the end of what this call reads: later detections are that much later in the stream.
        """
        timings = self.timings
        start = _time.perf_counter()
        samples = self.source.read()
        lost = self.source.ring.lost  # drops so far all lie before what a later read returns
        frames = self.window.push(samples)
        if timings is not None:
            timings.features.append(_time.perf_counter() - start)
        found = []
        for probs, took in self._hops(frames):
            t1 = _time.perf_counter()
            now = self.window.end_time + self._lost_seconds
            if not np.isfinite(probs).all():
                raise KwsError(f"the model output NaN or infinite scores at {now:.2f} s")
            fired = self.posterior.update(probs, now)
            if timings is not None:
                timings.classifier.append(took)
                timings.posterior.append(_time.perf_counter() - t1)
            if self.on_hop is not None:
                self.on_hop(now, self.posterior.smoothed)
            if fired is not None:
                found.append(Detection(now, *fired))
        if lost != self._lost_counted:
            self._lost_seconds += samples_to_seconds(lost - self._lost_counted, self.input_rate)
            self._lost_counted = lost
        return found


def check_words(bundle: Bundle, config: Config) -> None:
    """``KwsError`` naming the first config word, or ``posterior.thresholds`` key, that is not one
    of the model's words (a typo such as "of" would otherwise be ignored without a word)."""
    words = bundle.words
    for key in config.posterior.thresholds:
        if key not in words:
            raise KwsError(f"posterior.thresholds: {key!r} is not a word of the model {bundle.path} "
                           f"({', '.join(words)})")
    if config.user_set("words"):
        for word in config.words:
            if word not in words and word not in NON_WORDS:
                raise KwsError(f"words: {word!r} is not a word of the model {bundle.path} "
                               f"({', '.join(words)})")


def replay(detector: Detector, blocks: Iterable[np.ndarray],
           realtime: bool = False, pad: bool = False) -> Iterator[Detection]:
    """Push audio blocks through the microphone's path: ``write`` each, then ``process``.

    With ``realtime``, each block is written when a sound card would have delivered it. With
    ``pad``, the stream ends with one window of silence (``end_silence``), so its last word
    (or a clip shorter than a window) can still be heard.
    """
    started = _time.monotonic()
    delivered = 0
    for block in blocks:
        if realtime:
            delivered += len(block)
            _time.sleep(max(0.0, started + delivered / detector.input_rate - _time.monotonic()))
        detector.write(block)
        yield from detector.process()
    if pad:
        for block in end_silence(detector):
            detector.write(block)
            yield from detector.process()


def end_silence(detector: Detector, seconds: float | None = None) -> Iterator[np.ndarray]:
    """Blocks of silence at the detector's input rate, ``seconds`` in all (default: one
    classifier window and a stride), each small enough for its ring: what ``replay(pad=True)``
    pushes after a stream so that its last word, or a clip shorter than a window, is heard."""
    window = detector.window
    fe = window.frontend
    if seconds is None:
        seconds = samples_to_seconds(window.frames * fe.hop + fe.window, fe.sample_rate)
    left = seconds_to_samples(seconds, detector.input_rate)
    piece = np.zeros(max(1, min(left, detector.source.ring.capacity // 2)), np.float32)
    while left > 0:
        yield piece[:min(left, len(piece))]
        left -= len(piece)


def chunks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``samples`` in consecutive pieces of ``size`` (the last may be shorter)."""
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


def format_detection(d: Detection, as_json: bool, source: str | None = None) -> str:
    """One output line: aligned text, or a JSON object (with ``file`` when replaying several)."""
    if as_json:
        record = {"time": round(d.time, 3), "word": d.word, "score": round(d.score, 4)}
        return json.dumps(record if source is None else {"file": source, **record})
    line = f"{d.time:9.3f}  {d.word:<8} {d.score:.3f}"
    return line if source is None else f"{source}: {line}"
