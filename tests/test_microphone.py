"""Capture without a sound card: a fake ``sounddevice`` drives the real callback path.

PulseAudio never loses input (a stalled reader just blocks the server), so overflows, a
consumer that falls behind and a device that vanishes are all staged here with a fake stream.
"""

from __future__ import annotations

import ctypes.util
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from kws.audio import microphone
from kws.audio.microphone import (Microphone, MicrophoneError, capture_rate, find_input_device,
                                  import_sounddevice)
from kws.audio.files import resample
from kws.audio.ring import RingBuffer
from kws.cli import main
from kws.live import Report, listen

BLOCK = 160


class FakeFlags:
    """``sounddevice.CallbackFlags``, as far as the callback reads it."""

    def __init__(self, input_overflow: bool = False):
        self.input_overflow = input_overflow


class FakeStream:
    """``sounddevice.InputStream``: ``start`` plays ``fake.script`` through the callback from a
    thread of its own, as PortAudio would; ``(block, overflow, pause_s)`` per callback, or a
    function to call at that point of the stream. Then it calls ``fake.at_end(stream)``, if set."""

    def __init__(self, fake: "FakeSounddevice", *, samplerate, blocksize, device, channels, dtype,
                 callback, finished_callback):
        assert (channels, dtype, blocksize) == (1, "float32", fake.expect_block)
        fake.opened.append({"rate": samplerate, "device": device})
        self._fake = fake
        self._callback = callback
        self.finished_callback = finished_callback
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)

    def _play(self) -> None:
        for item in self._fake.script:
            if self._closed.is_set():
                return
            if callable(item):
                item()
                continue
            block, overflow, pause = item
            self._callback(block.reshape(-1, 1), len(block), None, FakeFlags(overflow))
            time.sleep(pause)
        if self._fake.at_end:
            self._fake.at_end(self)

    def start(self) -> None:
        self._thread.start()

    def close(self, ignore_errors: bool = True) -> None:
        self._closed.set()
        self._fake.closed.set()
        self._thread.join()
        self.finished_callback()  # PortAudio calls it whenever a stream stops, asked to or not


class FakeSounddevice:
    """The parts of the ``sounddevice`` module that ``kws.audio.microphone`` uses."""

    class PortAudioError(Exception):
        pass

    def __init__(self, names=("Built-in Mic", "USB Mic", "USB Mic 2"), default=0,
                 rates=(16000,), script=(), at_end=None):
        self.names = names
        self.default = type("default", (), {"device": [default, default]})
        self.rates = rates
        self.script = list(script)
        self.at_end = at_end
        self.expect_block = BLOCK
        self.opened: list[dict] = []
        self.stream: FakeStream | None = None  # the last one opened
        self.closed = threading.Event()  # set when kws closes a stream

    def query_devices(self):
        return [{"index": i, "name": n, "hostapi": 0, "max_input_channels": 1,
                 "default_samplerate": 48000.0} for i, n in enumerate(self.names)]

    def query_hostapis(self, index):
        return {"name": "Fake"}

    def check_input_settings(self, device, channels, dtype, samplerate):
        if samplerate not in self.rates:
            raise self.PortAudioError("Invalid sample rate")

    def InputStream(self, **kwargs):  # noqa: N802 (sounddevice's name)
        self.stream = FakeStream(self, **kwargs)
        return self.stream


@pytest.fixture
def fake_sd(monkeypatch):
    """Install a ``FakeSounddevice``; tests adjust its attributes before opening a stream."""
    fake = FakeSounddevice()
    monkeypatch.setattr(microphone, "import_sounddevice", lambda: fake)
    return fake


class Signals:
    """``signal.signal`` while a test runs: handlers are recorded and ``send`` calls one, as the
    operating system would, so Ctrl-C and SIGTERM are staged without signalling the test runner."""

    def __init__(self):
        self.handlers = {signal.SIGINT: "previous SIGINT handler", signal.SIGTERM: "previous SIGTERM handler"}

    def signal(self, sig, handler):
        previous, self.handlers[sig] = self.handlers.get(sig, signal.SIG_DFL), handler
        return previous

    def send(self, sig) -> None:
        self.handlers[sig](sig, None)


@pytest.fixture
def signals(monkeypatch) -> Signals:
    fake = Signals()
    monkeypatch.setattr(signal, "signal", fake.signal)
    return fake


def test_device_by_default_index_and_name(fake_sd):
    assert find_input_device().name == "Built-in Mic"
    assert find_input_device("1").name == "USB Mic"
    assert find_input_device("built-in").index == 0
    assert find_input_device("usb mic").index == 1  # an exact name is not ambiguous
    assert find_input_device(2).name == "USB Mic 2"  # audio.device: 2 in a config file


@pytest.mark.parametrize("query, message", [
    ("usb", "matches several input devices: [1] USB Mic (Fake), [2] USB Mic 2 (Fake)"),
    ("headset", "no input device matches 'headset'"),
    ("7", "no input device has index 7"),
])
def test_bad_device_is_one_line_error(fake_sd, query, message):
    with pytest.raises(MicrophoneError, match=re.escape(message)) as err:
        find_input_device(query)
    assert "\n" not in str(err.value)


def test_no_device_at_all(fake_sd):
    fake_sd.names = ()
    with pytest.raises(MicrophoneError, match="no input device found"):
        find_input_device()


def test_rate_falls_back_to_device_default(fake_sd):
    device = find_input_device()
    assert capture_rate(device, 16000) == 16000
    fake_sd.rates = (48000,)
    assert capture_rate(device, 16000) == 48000


def test_missing_portaudio_says_how_to_install(monkeypatch):
    # sounddevice looks PortAudio up with ctypes.util.find_library when it is imported.
    find = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name == "portaudio"
                        else find(name))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    with pytest.raises(MicrophoneError, match=r"PortAudio library not found.*apt-get install "
                                              r"libportaudio2"):
        import_sounddevice()


def _blocks(values, overflow=(), pause=0.0):
    """One constant-valued block per value, so the consumer can tell which arrived."""
    return [(np.full(BLOCK, v, np.float32), i in overflow, pause) for i, v in enumerate(values)]


def test_callback_copies_blocks_and_counts_overflows(fake_sd):
    fake_sd.script = _blocks([0.1, 0.2, 0.3], overflow={1})
    played = threading.Event()
    fake_sd.at_end = lambda stream: played.set()
    got = []
    mic = Microphone(find_input_device(), 16000, BLOCK, lambda block: got.append(block.copy()))
    with mic:
        assert played.wait(30)
        assert not mic.device_lost
    assert [b[0] for b in got] == pytest.approx([0.1, 0.2, 0.3])
    assert all(b.shape == (BLOCK,) and b.dtype == np.float32 for b in got)
    assert mic.overflows == 1
    assert not mic.device_lost  # closing it ourselves is not losing it


@dataclass(frozen=True)
class Detection:
    time: float
    word: str
    score: float


class StubDetector:
    """The ``Detector`` interface over a real ``RingBuffer``; it reports "yes" for every block
    of 0.5s and can be stalled, to make the ring overflow."""

    def __init__(self, capacity: int):
        self.ring = RingBuffer(capacity)
        self.stall = threading.Event()
        self.consumed = 0
        self._progress = threading.Condition()
        self._buffer = np.zeros(capacity, np.float32)

    def write(self, chunk):
        self.ring.write(chunk)

    def wait(self, timeout=None):
        return self.ring.wait(timeout)

    @property
    def lost_samples(self):
        return self.ring.lost

    def process(self):
        while self.stall.is_set():
            time.sleep(0.01)
        n = self.ring.read_into(self._buffer)
        found = [Detection((self.consumed + i + BLOCK) / 16000, "yes", 0.9)
                 for i in range(0, n, BLOCK) if self._buffer[i] == 0.5]
        with self._progress:
            self.consumed += n
            self._progress.notify_all()
        return found

    def wait_consumed(self, samples: int) -> None:
        """Until the consumer has read ``samples`` in all (the audio thread waits on it)."""
        with self._progress:
            assert self._progress.wait_for(lambda: self.consumed >= samples, timeout=30)


def _listen(fake_sd, detector, **kwargs):
    mic = Microphone(find_input_device(), 16000, BLOCK, detector.write)
    listen(detector, mic, Report(json_lines=True), **kwargs)
    return mic


def test_stalled_consumer_loses_samples_reports_them_and_keeps_listening(fake_sd, signals, capsys):
    detector = StubDetector(capacity=10 * BLOCK)
    detector.stall.set()
    # 30 blocks arrive while the consumer is stalled: the ring keeps 10, drops 20. The driver
    # also flags two overflows. Then the consumer catches up and a word arrives in real time;
    # Ctrl-C after the last block.
    burst = _blocks([0.0] * 30, overflow={3, 4})
    later = _blocks([0.0] * 10 + [0.5] + [0.0] * 10, pause=BLOCK / 16000)
    fake_sd.script = burst + [detector.stall.clear, lambda: detector.wait_consumed(10 * BLOCK)] + later
    fake_sd.at_end = lambda stream: signals.send(signal.SIGINT)
    _listen(fake_sd, detector)
    out, err = capsys.readouterr()
    assert detector.lost_samples == 20 * BLOCK
    assert f"warning: {20 * BLOCK} samples lost, 2 input overflows so far; still listening" in err
    assert err.strip().splitlines()[-1].endswith(
        f"1 detection, {20 * BLOCK} samples lost, 2 input overflows")
    assert out.count('"word": "yes"') == 1  # the word after the loss was still detected
    assert detector.consumed == (10 + len(later)) * BLOCK


def test_vanished_device_is_one_line_error(fake_sd, capsys):
    fake_sd.script = _blocks([0.0] * 5)
    fake_sd.at_end = lambda stream: stream.finished_callback()  # as when a device is unplugged
    with pytest.raises(MicrophoneError, match="stopped delivering audio") as err:
        _listen(fake_sd, StubDetector(capacity=16000), duration=5)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(fake_sd, signals, capsys, sig):
    before = dict(signals.handlers)
    after = []

    def keep_arriving():
        # Audio goes on arriving after the signal, a block every 10 ms, until kws closes the
        # stream: the stop does not wait for the audio to end. Should it never close it, the
        # audio ends after a minute as an unplugged device would, and listen fails.
        for _ in range(6000):
            if fake_sd.closed.wait(0.01):
                return
            after.append(1)
            fake_sd.stream._callback(np.zeros((BLOCK, 1), np.float32), BLOCK, None, FakeFlags())

    fake_sd.script = _blocks([0.0] * 25, pause=0.01) + [lambda: signals.send(sig), keep_arriving]
    fake_sd.at_end = lambda stream: stream.finished_callback()
    _listen(fake_sd, StubDetector(capacity=16000))  # no duration: only the signal ends it
    assert fake_sd.closed.is_set() and len(after) < 6000
    assert "stopped after" in capsys.readouterr().err
    assert signals.handlers == before  # the previous handlers are back


def test_cli_bad_device_exits_2_with_one_line(fake_sd, capsys):
    assert main(["listen", "--device", "headset"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "kws: error: no input device matches 'headset' (see `kws devices`)\n"


@pytest.mark.slow
def test_device_without_16k_is_opened_at_its_rate_and_resampled(fake_sd, signals, tiny_bundle, spoken, capsys):
    """The whole command, in process: the device only takes 48 kHz, so kws opens it at 48 kHz
    and the detector resamples; the spoken stream is still detected word for word."""
    audio, labels, _ = spoken
    audio48 = resample(audio, 16000, 48000)
    block = 480  # audio.block_ms at 48 kHz
    fake_sd.rates = (48000,)
    fake_sd.expect_block = block
    # Four times real time: fast, yet far from filling the two-second ring.
    fake_sd.script = [(audio48[i:i + block], False, block / 48000 / 4)
                      for i in range(0, len(audio48) - block + 1, block)]
    fake_sd.at_end = lambda stream: signals.send(signal.SIGINT)
    assert main(["listen", "--json", "--model", str(tiny_bundle)]) == 0
    out, err = capsys.readouterr()
    assert "48000 Hz, resampled to 16000 Hz" in err
    assert [json.loads(line)["word"] for line in out.splitlines()] == [w for w, _, _ in labels]
    assert fake_sd.opened == [{"rate": 48000, "device": 0}]


def test_config_audio_device_is_used_when_no_device_flag(fake_sd, tmp_path, capsys):
    config = tmp_path / "mic.yaml"
    config.write_text("audio:\n  device: headset\n")
    assert main(["listen", "--config", str(config)]) == 2
    assert "no input device matches 'headset'" in capsys.readouterr().err


def test_devices_shows_the_rates_that_really_open(fake_sd, capsys):
    # The fake's devices advertise 48 kHz; only what check_input_settings accepts is listed.
    fake_sd.names = ("Built-in Mic",)
    fake_sd.rates = (16000, 44100)
    assert microphone.open_rates(find_input_device()) == [16000, 44100]
    assert main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("*   0  Built-in Mic  (Fake, 1 ch)")
    assert out[1].strip() == ("opens at: 16,000, 44,100 Hz (default 48,000 Hz); "
                              "kws listen records at 16,000 Hz")
    fake_sd.rates = (48000,)
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.splitlines()[1].strip() == (
        "opens at: 48,000 Hz (default 48,000 Hz); kws listen records at 48,000 Hz, "
        "resampled to 16,000 Hz")


def test_rate_checks_are_bounded_in_time(fake_sd, monkeypatch):
    # A stalled server never answers check_input_settings: one line after the time limit.
    monkeypatch.setattr(fake_sd, "check_input_settings", lambda **_: time.sleep(5))
    monkeypatch.setattr(microphone, "AUDIO_TIMEOUT", 0.2)
    monkeypatch.setattr(microphone, "abandoned", threading.Event())  # this test's own
    with pytest.raises(MicrophoneError, match=r"did not answer within 0\.2 s \(checking the device's rates\)"):
        microphone.open_rates(find_input_device())


def test_detections_yields_every_poll_then_the_last_audio(fake_sd):
    from kws.live import detections

    detector = StubDetector(capacity=16000)
    fake_sd.script = _blocks([0.0] * 30 + [0.5] + [0.0] * 5, pause=BLOCK / 16000)
    stop = threading.Event()
    fake_sd.at_end = lambda stream: stop.set()
    mic = Microphone(find_input_device(), 16000, BLOCK, detector.write)
    started = []
    polls = list(detections(detector, mic, stop=stop, on_start=lambda: started.append(1)))
    assert started == [1] and mic._closing  # started once, closed at the end
    assert [] in polls  # empty polls too: a view redraws on them
    assert [d.word for found in polls for d in found] == ["yes"]
    assert detector.consumed == 36 * BLOCK  # the last audio in the ring was drained


def test_a_consumer_that_stops_iterating_closes_the_microphone(fake_sd, tiny_bundle):
    from kws.api import Spotter

    fake_sd.script = _blocks([0.0] * 200, pause=0.005)
    spotter = Spotter(model=tiny_bundle, config=tiny_bundle.parent / "tiny.yaml")
    for update in spotter.listen_updates(duration=5):
        break
    assert spotter.microphone._closing and update.detections == []


def _spoken_script(fake_sd, signals, spoken, words: int = 2):
    audio, labels, _ = spoken
    end = round((labels[words - 1][2] + 1.2) * 16000)
    # Four times real time: fast, yet far from filling the two-second ring.
    fake_sd.script = [(audio[i:i + BLOCK], False, BLOCK / 16000 / 4) for i in range(0, end - BLOCK + 1, BLOCK)]
    fake_sd.at_end = lambda stream: signals.send(signal.SIGINT)  # Ctrl-C when the audio ends
    return [word for word, _, _ in labels[:words]]


@pytest.mark.slow
def test_listen_view_draws_the_words_and_ctrl_c_ends_it_with_the_summary(fake_sd, signals, tiny_bundle, spoken,
                                                                        capsys):
    words = _spoken_script(fake_sd, signals, spoken)
    assert main(["listen", "--view", "--model", str(tiny_bundle), "--config",
                 str(tiny_bundle.parent / "tiny.yaml"), "--threshold", "0.6"]) == 0
    out, err = capsys.readouterr()
    # stdout is not a terminal here: the view prints plain lines (tests/test_view.py: a terminal).
    found = [line.split()[1] for line in out.splitlines() if "near miss" not in line]
    assert found == words, out
    assert re.search(rf"kws: stopped after \d+\.\d s: {len(words)} detections, 0 samples lost", err), err


@pytest.mark.slow
def test_listen_near_misses_go_to_stderr(fake_sd, signals, tiny_bundle, spoken, capsys):
    words = _spoken_script(fake_sd, signals, spoken)
    assert main(["listen", "--near-misses", "--model", str(tiny_bundle), "--config",
                 str(tiny_bundle.parent / "tiny.yaml"), "--threshold", "0.9999"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    misses = re.findall(r"kws: near miss: (\w+) (0\.\d\d) < 0\.9999\n", err)
    assert set(words) <= {word for word, _ in misses}, err


def test_listen_view_refuses_flags_it_replaces(fake_sd, capsys):
    assert main(["listen", "--view", "--json"]) == 2
    assert "--view draws the detections itself: leave out --json" in capsys.readouterr().err


def test_no_device_at_all_is_one_line_that_does_not_send_you_in_a_circle(fake_sd, capsys):
    fake_sd.names = ()
    for command in (["devices"], ["listen"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("kws: error: no input device found: is a microphone connected") and err.count("\n") == 1
        assert "kws devices" not in err  # what `kws devices` says: it would list nothing
