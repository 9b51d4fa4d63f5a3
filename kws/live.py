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
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Iterator

import numpy as np

from kws.audio.microphone import Microphone, MicrophoneError
from kws.audio.ring import RingBuffer
from kws.detector import Detection, Detector, format_detection

POLL_SECONDS = 0.1  # longest sleep between checks for a stop, a lost device or lost audio
WARN_EVERY = 1.0  # seconds; lost-audio warnings are not repeated faster than this


def note(text: str) -> None:
    print(f"kws: {text}", file=sys.stderr, flush=True)


def listen(detector: Detector, microphone: Microphone, report: Report,
           meter: Meter | None = None, duration: float | None = None) -> None:
    """Run until SIGINT/SIGTERM, ``duration`` seconds, or the device goes away (an error)."""
    losses = LossWatch(detector, microphone)
    with _stop_on_signals() as stop, microphone:
        started = time.monotonic()
        report.start()
        note(f"listening on {microphone.device} (Ctrl-C to stop)")
        try:
            while not stop.is_set():
                detector.wait(POLL_SECONDS)
                for detection in detector.process():
                    if meter:
                        meter.clear()
                    report.detection(detection)
                if microphone.device_lost:
                    raise MicrophoneError(f"input device {microphone.device} stopped delivering "
                                          "audio (unplugged, or the audio server went away)")
                if duration is not None and time.monotonic() - started >= duration:
                    break
                losses.check()
                report.reap()
                if meter:
                    meter.draw()
        finally:
            if meter:
                meter.clear()
    # The stream is closed: what is still in the ring is the last of the audio.
    for detection in detector.process():
        report.detection(detection)
    report.finish()
    note(f"stopped after {time.monotonic() - started:.1f} s: {report.count} detection"
          f"{'' if report.count == 1 else 's'}, {losses.summary()}")


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

    Commands are started, never waited for, on this thread; finished ones are reaped on each
    pass of the loop and a failure is reported on stderr.
    """

    def __init__(self, json_lines: bool = False, command: str | None = None):
        self.json_lines = json_lines
        self.command = command
        self.count = 0
        self._started = time.time()
        self._children: list[subprocess.Popen] = []

    def start(self) -> None:
        """Stream time 0 (the first sample) is now, on the wall clock."""
        self._started = time.time()

    def detection(self, detection: Detection) -> None:
        self.count += 1
        if self.json_lines:
            line = format_detection(detection, as_json=True)
        else:
            clock = datetime.fromtimestamp(self._started + detection.time)
            line = f"{clock:%H:%M:%S}.{clock.microsecond // 1000:03d}  {detection.word}  " \
                   f"{detection.score:.2f}"
        print(line, flush=True)
        if self.command:
            self._spawn(detection)

    def _spawn(self, detection: Detection) -> None:
        env = {**os.environ, "KWS_WORD": detection.word, "KWS_SCORE": f"{detection.score:.3f}",
               "KWS_TIME": f"{detection.time:.3f}"}
        try:
            # Its stdout goes to our stderr: stdout carries detections only.
            self._children.append(subprocess.Popen(self.command, shell=True, env=env,
                                                   stdin=subprocess.DEVNULL, stdout=sys.stderr))
        except OSError as err:
            note(f"warning: --exec: cannot run {self.command!r} ({err.strerror or err})")

    def reap(self) -> None:
        for child in [c for c in self._children if c.poll() is not None]:
            self._children.remove(child)
            if child.returncode != 0:
                note(f"warning: --exec command exited with status {child.returncode}")

    def finish(self, grace: float = 2.0) -> None:
        """Give running commands ``grace`` seconds to end; the rest keep running on their own."""
        deadline = time.monotonic() + grace
        while self._children and time.monotonic() < deadline:
            time.sleep(0.02)
            self.reap()


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
