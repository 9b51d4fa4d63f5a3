"""A private PulseAudio server whose default source is a virtual microphone, for end-to-end tests.

What is played into the null sink ``vmic_sink`` comes out of the source ``vmic`` (its monitor,
remapped so PortAudio sees an ordinary input), bit-exact at 16 kHz mono. ``norewinds=1`` is
essential: without it the sink hands out audio in 2-second blocks. The server runs in a
private ``XDG_RUNTIME_DIR`` and listens on its own socket, so it touches nothing else on the
machine; clients reach it through ``PULSE_SERVER``, which must be in their environment before
``sounddevice`` is imported (PortAudio enumerates devices once, at import), hence subprocesses.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SINK = "vmic_sink"


@dataclass(frozen=True)
class VirtualMic:
    runtime_dir: Path
    env: dict[str, str]  # os.environ plus PULSE_SERVER: pass to every client
    pid: int  # the server's: killing it is how a test makes the microphone vanish

    def play(self, wav: Path) -> None:
        """Play ``wav`` into the virtual microphone; returns when it has been played."""
        subprocess.run(["paplay", f"--device={SINK}", str(wav)], env=self.env, check=True,
                       capture_output=True, timeout=60)


def _config(runtime_dir: Path) -> str:
    return (f"load-module module-native-protocol-unix socket={runtime_dir}/native\n"
            f"load-module module-null-sink sink_name={SINK} rate=16000 channels=1 norewinds=1\n"
            f"load-module module-remap-source master={SINK}.monitor source_name=vmic\n"
            f"set-default-sink {SINK}\n"
            "set-default-source vmic\n")


@contextlib.contextmanager
def pulse_server(timeout: float = 10.0) -> Iterator[VirtualMic]:
    """Start the server, wait until it answers, yield it; stop it by its PID afterwards."""
    # A short path of our own: a unix socket path must fit in 108 bytes.
    runtime_dir = Path(tempfile.mkdtemp(prefix="kws-pulse-"))
    (runtime_dir / "vmic.pa").write_text(_config(runtime_dir))
    env = {**os.environ, "PULSE_SERVER": f"unix:{runtime_dir}/native"}
    log = open(runtime_dir / "pulseaudio.log", "w")
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "-F",
         str(runtime_dir / "vmic.pa")],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PulseAudio did not start: "
                                   + (runtime_dir / "pulseaudio.log").read_text()[-2000:])
            time.sleep(0.1)
        yield VirtualMic(runtime_dir, env, daemon.pid)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def virtual_mic() -> Iterator[VirtualMic]:
    """A running ``pulse_server``; skipped where PulseAudio is not installed (CI installs it)."""
    for tool, package in (("pulseaudio", "pulseaudio"), ("paplay", "pulseaudio-utils"),
                          ("pactl", "pulseaudio-utils")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {package})")
    with pulse_server() as mic:
        yield mic


class Lines:
    """A pipe's lines, collected by a thread so a test can wait for one without blocking."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:  # progress redraws (\r) count as lines of their own
            for part in line.replace("\r", "\n").split("\n"):
                if part.strip():
                    self.lines.append(part)
                    self._new.put(part)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if text in self._new.get(timeout=max(0.0, deadline - time.monotonic())):
                    return
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s:\n"
                                     + "\n".join(self.lines)) from None

    def close(self) -> list[str]:
        self._thread.join(timeout=10)
        return self.lines
