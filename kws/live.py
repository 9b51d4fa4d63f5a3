"""The live loop: the microphone feeds the detector; detections go out as they come.

Two threads. PortAudio's audio thread runs ``Microphone``'s callback, which only copies each
block into the detector's ring buffer. ``listen`` (on the caller's thread) sleeps on the ring,
runs the detector on what arrived, hands detections to ``Report`` (stdout and ``--exec``),
draws the ``Meter`` and, with ``LossWatch``, watches for lost audio and a vanished device.
Nothing here can make the audio thread wait: if processing falls behind, the ring drops samples
and they are counted and reported.

stdout carries only detections (a line, or a JSON object), flushed one by one so a pipe sees
each at once; everything else goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Callable, Iterator

import numpy as np

from kws.audio.microphone import Microphone, MicrophoneError
from kws.audio.ring import RingBuffer
from kws.detector import Detection, Detector, format_detection

POLL_SECONDS = 0.1  # longest sleep between checks for a stop, a lost device or lost audio
WARN_EVERY = 1.0  # seconds; lost-audio warnings are not repeated faster than this
STALL_REPEAT = 5.0  # seconds between repeated "no audio is arriving" warnings
MAX_HOOKS = 8  # --exec commands running at once; a detection beyond this runs none (a warning)
HOOK_GRACE = 2.0  # seconds --exec commands get to finish at exit before their group is killed


def note(text: str) -> None:
    print(f"kws: {text}", file=sys.stderr, flush=True)


def detections(detector: Detector, microphone: Microphone, duration: float | None = None,
               stall_seconds: float = 2.0, stop: threading.Event | None = None,
               on_start: Callable[[], object] | None = None) -> Iterator[list[Detection]]:
    """The microphone loop: one list of detections per poll (about every ``POLL_SECONDS``;
    empty too, so a view can redraw), until ``duration`` seconds, ``stop`` is set, or the
    device goes away (a ``MicrophoneError``).

    It starts the microphone (then calls ``on_start``: stream time 0 is now), sleeps on the
    ring, processes what arrived, and watches for a lost device, lost audio (``LossWatch``)
    and a stalled server (``StallWatch``: no audio at all for ``stall_seconds``, said on
    stderr, again every ``STALL_REPEAT`` seconds). When it ends it closes the microphone (not
    waiting longer than about a second) and yields what was still in the ring: the last
    audio. A consumer that stops iterating closes the microphone too, without that last list.
    Both ``listen`` and ``kws.api.Spotter.listen`` iterate it.
    """
    losses = LossWatch(detector, microphone)
    stall = StallWatch(microphone, stall_seconds)
    microphone.start()
    try:
        started = time.monotonic()
        if on_start is not None:
            on_start()
        while stop is None or not stop.is_set():
            detector.wait(POLL_SECONDS)
            yield detector.process()
            if microphone.device_lost:
                raise MicrophoneError(f"input device {microphone.device} stopped delivering "
                                      "audio (unplugged, or the audio server went away)")
            if duration is not None and time.monotonic() - started >= duration:
                break
            losses.check()
            stall.check()
    finally:
        microphone.close()
    # The stream is closed: what is still in the ring is the last of the audio.
    yield detector.process()


def listen(detector: Detector, microphone: Microphone, report: Report,
           meter: Meter | None = None, duration: float | None = None,
           stall_seconds: float = 2.0) -> None:
    """Run until SIGINT/SIGTERM, ``duration`` seconds, or the device goes away (an error):
    ``detections`` with its output: each detection to ``report``, the ``meter`` redrawn, and
    a summary on stderr at the end.

    A stop always ends it within about a second: closing the stream is not waited for longer
    than that (``Microphone.close``), and ``--exec`` commands still running get
    ``HOOK_GRACE`` seconds.
    """
    started = time.monotonic()

    def begin() -> None:
        nonlocal started
        started = time.monotonic()
        report.start()
        note(listening(microphone.device))

    try:
        with _stop_on_signals() as stop:
            try:
                for found in detections(detector, microphone, duration, stall_seconds, stop, begin):
                    for detection in found:
                        if meter:
                            meter.clear()
                        report.detection(detection)
                    report.reap()
                    if meter:
                        meter.draw()
            finally:
                if meter:
                    meter.clear()
    finally:
        report.finish()
    note(summary(time.monotonic() - started, report.count, detector, microphone))


def listening(device) -> str:
    """The line that says listening has begun."""
    return f"listening on {device} (Ctrl-C to stop)"


def summary(seconds: float, count: int, detector: Detector, microphone: Microphone) -> str:
    """The last line of a listening session: how long, how many detections, what was lost."""
    return (f"stopped after {seconds:.1f} s: {count} detection{'' if count == 1 else 's'}, "
            f"{LossWatch(detector, microphone).summary()}")


class StallWatch:
    """Warns when no audio has arrived for ``seconds`` (once, then every ``STALL_REPEAT``)."""

    def __init__(self, microphone: Microphone, seconds: float):
        self._microphone = microphone
        self._seconds = seconds
        self._since = time.monotonic()
        self._warned_at: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        last = getattr(self._microphone, "last_audio", None)
        silent_since = max(self._since, last) if last is not None else self._since
        quiet = now - silent_since
        if quiet < self._seconds:
            if self._warned_at is not None:
                note(f"audio is arriving again after {quiet:.0f} s")
                self._warned_at = None
            return
        if self._warned_at is None or now - self._warned_at >= STALL_REPEAT:
            note(f"warning: no audio has arrived from {self._microphone.device} for "
                 f"{now - silent_since:.0f} s (is the audio server stalled?); still waiting")
            self._warned_at = now


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, so either ends listening cleanly with exit 0."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class LossWatch:
    """Counts audio lost to input overflows (the driver) and to a full ring (processing fell
    behind), and warns on stderr when either grows, at most every ``WARN_EVERY`` seconds."""

    def __init__(self, detector: Detector, microphone: Microphone):
        self._detector = detector
        self._microphone = microphone
        self._reported = (0, 0)
        self._last_warning = -math.inf

    def _counts(self) -> tuple[int, int]:
        return self._detector.lost_samples, self._microphone.overflows

    def check(self) -> None:
        counts = self._counts()
        now = time.monotonic()
        if counts != self._reported and now - self._last_warning >= WARN_EVERY:
            note(f"warning: {self.summary()} so far; still listening")
            self._reported, self._last_warning = counts, now

    def summary(self) -> str:
        lost, overflows = self._counts()
        text = f"{lost} sample{'' if lost == 1 else 's'} lost"
        if overflows:
            text += f", {overflows} input overflow{'' if overflows == 1 else 's'}"
        return text


class Report:
    """Where detections go: stdout (a line or JSON) and, with ``command``, a shell command.

    Text lines show the wall-clock time; JSON objects carry ``time`` (stream seconds, the
    samples lost on the way included) and ``clock`` (the wall-clock time, ISO 8601).
    Commands are started, never waited for, on this thread, each in a process group of its
    own; finished ones are reaped on each pass of the loop and a failure is reported on stderr.
    At most ``max_hooks`` run at once (a detection beyond that runs none, with a warning), and
    ``finish`` kills the groups of those still running after a grace time, so no hook outlives
    kws.
    """

    def __init__(self, json_lines: bool = False, command: str | None = None,
                 max_hooks: int = MAX_HOOKS):
        self.json_lines = json_lines
        self.command = command
        self.max_hooks = max_hooks
        self.count = 0
        self.skipped_hooks = 0
        self._started = time.time()
        self._children: list[subprocess.Popen] = []

    def start(self) -> None:
        """Stream time 0 (the first sample) is now, on the wall clock."""
        self._started = time.time()

    def clock(self, detection: Detection) -> datetime:
        """The wall-clock time of ``detection`` (stream time 0 is ``start``)."""
        return datetime.fromtimestamp(self._started + detection.time).astimezone()

    def detection(self, detection: Detection) -> None:
        self.count += 1
        print(self.line(detection), flush=True)
        if self.command:
            self._spawn(detection, self.clock(detection))

    def line(self, detection: Detection) -> str:
        """``kws listen``'s line for ``detection`` (also in ``--view`` off a terminal)."""
        clock = self.clock(detection)
        if self.json_lines:
            record = json.loads(format_detection(detection, as_json=True))
            return json.dumps({**record, "clock": clock.isoformat(timespec="milliseconds")})
        return f"{clock:%H:%M:%S}.{clock.microsecond // 1000:03d}  {detection.word}  {detection.score:.2f}"

    def _spawn(self, detection: Detection, clock: datetime) -> None:
        self.reap()
        if len(self._children) >= self.max_hooks:
            self.skipped_hooks += 1
            note(f"warning: --exec: {len(self._children)} commands still running; not running "
                 f"it for {detection.word} at {detection.time:.3f} s")
            return
        env = {**os.environ, "KWS_WORD": detection.word, "KWS_SCORE": f"{detection.score:.3f}",
               "KWS_TIME": f"{detection.time:.3f}",
               "KWS_CLOCK": clock.isoformat(timespec="milliseconds")}
        try:
            # Its stdout goes to our stderr: stdout carries detections only. A session of its
            # own: its whole process group can be ended at exit.
            self._children.append(subprocess.Popen(self.command, shell=True, env=env,
                                                   stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                                   start_new_session=True))
        except (OSError, ValueError) as err:
            note(f"warning: --exec: cannot run {self.command!r} ({getattr(err, 'strerror', None) or err})")

    def reap(self) -> None:
        for child in [c for c in self._children if c.poll() is not None]:
            self._children.remove(child)
            if child.returncode != 0:
                note(f"warning: --exec command exited with status {child.returncode}")

    def finish(self, grace: float = HOOK_GRACE) -> None:
        """Give running commands ``grace`` seconds to end, then end their process groups
        (SIGTERM, then SIGKILL half a second later): no hook outlives kws."""
        deadline = time.monotonic() + grace
        while self._children and time.monotonic() < deadline:
            time.sleep(0.02)
            self.reap()
        if not self._children:
            return
        note(f"stopping {len(self._children)} --exec command"
             f"{'' if len(self._children) == 1 else 's'} still running after {grace:g} s")
        for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 1.0)):
            for child in self._children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end and any(c.poll() is None for c in self._children):
                time.sleep(0.02)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.1)
        self._children = []


class Meter:
    """A live input level bar on stderr, fed by its own small ring so the audio callback
    still only copies."""

    WIDTH = 40
    FLOOR_DB = -60.0

    def __init__(self, rate: int):
        self._ring = RingBuffer(rate)  # one second: the meter reads every POLL_SECONDS
        self._scratch = np.zeros(rate, dtype=np.float32)
        self._shown = False
        self._drawn_at = -math.inf

    def tee(self, write):
        """A ``write`` that feeds both ``write`` and this meter."""
        def both(samples: np.ndarray) -> None:
            write(samples)
            self._ring.write(samples)
        return both

    def draw(self) -> None:
        """Redraw with the level since the last redraw, at most every ``POLL_SECONDS``."""
        if time.monotonic() - self._drawn_at < POLL_SECONDS:
            return
        n = self._ring.read_into(self._scratch)
        if not n:
            return
        self._drawn_at = time.monotonic()
        rms = float(np.sqrt(np.mean(np.square(self._scratch[:n], dtype=np.float64))))
        db = max(self.FLOOR_DB, 20 * math.log10(max(rms, 1e-10)))
        filled = round(self.WIDTH * (1 - db / self.FLOOR_DB))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        sys.stderr.write(f"\r  level {db:6.1f} dBFS  [{bar}]")
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._shown = False
