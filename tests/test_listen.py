"""``kws listen`` end to end, on a real audio server: a private PulseAudio with a virtual mic.

Words spoken by espeak-ng voices the tiny model never heard are played into the virtual
microphone with ``paplay`` while ``kws listen --json`` runs as a subprocess, exactly as a user
would run it; then it gets Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_kws
from kws.live import Meter, Report
from kws.detector import Detection
from pulse import Lines, VirtualMic, pulse_server, virtual_mic  # noqa: F401 (a fixture)

RATE = 16000

# Records from the default input through kws's own capture path until argv[2] samples have
# arrived from the first that is not silence (what was played; the null sink gives zeros
# before it); saves the samples and the wall-clock time each 160-sample block arrived.
RECORDER = """
import sys, threading, time
import numpy as np
from kws.audio.microphone import Microphone, find_input_device
out, wanted = sys.argv[1], int(sys.argv[2])
blocks, arrivals, done = [], [], threading.Event()
state = {"seen": 0, "start": None}
def write(block):
    blocks.append(block.copy())
    arrivals.append(time.time())
    if state["start"] is None and np.any(block):
        state["start"] = state["seen"] + int(np.flatnonzero(block)[0])
    state["seen"] += len(block)
    if state["start"] is not None and state["seen"] - state["start"] >= wanted:
        done.set()
with Microphone(find_input_device(), 16000, 160, write):
    print("recording", flush=True)
    assert done.wait(60), "the played audio did not arrive"
np.savez(out, samples=np.concatenate(blocks), arrivals=np.array(arrivals))
"""


# `kws listen` exactly as `python -m kws` runs it, keeping every block the sound card delivers
# (the callback copies it once more), saved to argv[1] at the end: the audio live detection heard.
LISTEN_RECORDING = """
import sys
import numpy as np
import kws.audio.microphone as microphone

blocks, state = [], {"seen": 0, "start": None, "wanted": int(sys.argv[2])}


def keep(block):
    blocks.append(block.copy())
    if state["start"] is None and np.any(block):  # the file starts: the null sink gave zeros before
        state["start"] = state["seen"] + int(np.flatnonzero(block)[0])
    state["seen"] += len(block)
    if state["start"] is not None and state["seen"] - state["start"] >= state["wanted"] > 0:
        print("kws-test: heard the file", file=sys.stderr, flush=True)
        state["wanted"] = 0


class Recording(microphone.Microphone):
    def __init__(self, device, rate, block, write):
        super().__init__(device, rate, block, lambda b: (keep(b), write(b)))


microphone.Microphone = Recording
from kws.cli import main

code = main(sys.argv[3:])
np.save(sys.argv[1], np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
sys.exit(code)
"""


def _kws(mic: VirtualMic, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kws", *args], env=mic.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _replay(wav, *args: str) -> list[dict]:
    out = run_kws("replay", str(wav), "--json", *args).stdout
    return [d for d in map(json.loads, out.splitlines()) if "word" in d]


@pytest.mark.slow
def test_listen_detects_as_replay_of_the_same_file(virtual_mic, tiny_bundle, spoken, tmp_path):
    # The first four words (voices the tiny model never heard): played in real time, so short.
    audio, labels, _ = spoken
    labels = labels[:4]
    wav = tmp_path / "four_words.wav"
    sf.write(wav, audio[:round((labels[-1][2] + 1.5) * RATE)], RATE, subtype="PCM_16")
    words = [word for word, _, _ in labels]
    model = ("--model", str(tiny_bundle), "--config", str(tiny_bundle.parent / "tiny.yaml"))
    exec_log = tmp_path / "exec.log"
    heard = tmp_path / "heard.npy"
    launched = time.monotonic()
    played = sf.read(wav, dtype="int16")[0].astype(np.int32)
    proc = subprocess.Popen([sys.executable, "-c", LISTEN_RECORDING, str(heard), str(len(played)), "listen", "--json",
                             *model,
                             "--exec", f'echo "$KWS_WORD" >> {exec_log}'], env=virtual_mic.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = Lines(proc.stderr)
    try:
        stderr.wait_for("listening", timeout=60)
        listening = time.monotonic()
        virtual_mic.play(wav)
        # Stopped once the whole file has come in: what is still in the ring is processed then.
        stderr.wait_for("kws-test: heard the file", timeout=60)
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    err = [line for line in stderr.close() if not line.startswith("kws-test:")]
    print(f"start-up {listening - launched:.2f} s\n" + "\n".join(err) + "\n" + out)
    assert "kws: words: yes (0.700), no (0.700), up (0.700), stop (0.700)" in err
    live = [json.loads(line) for line in out.splitlines()]
    assert [d["word"] for d in live] == words, (out, err)
    assert re.fullmatch(r"kws: stopped after \d+\.\d s: 4 detections, 0 samples lost", err[-1])
    assert exec_log.read_text().split() == words

    # What live detection heard is the file, bit for bit, after the silence before it started.
    captured = np.round(np.load(heard) * 32768).astype(np.int32)
    at = int(np.flatnonzero(captured)[0] - np.flatnonzero(played)[0])
    assert np.array_equal(captured[at:at + len(played)], played)
    # Replayed, that very audio gives the live detections exactly; the file alone gives the same
    # words at the same times, within one 20-ms hop (the hops fall elsewhere in the file).
    sf.write(tmp_path / "heard.wav", captured.astype(np.int16), RATE, subtype="PCM_16")
    again = _replay(tmp_path / "heard.wav", *model)
    assert [(d["word"], d["time"]) for d in again] == [(d["word"], d["time"]) for d in live]
    assert [d["score"] for d in again] == pytest.approx([d["score"] for d in live], abs=1e-3)
    replayed = _replay(wav, *model)
    assert [d["word"] for d in replayed] == words
    for d, r in zip(live, replayed):
        assert abs(d["time"] - (r["time"] + at / RATE)) <= 0.02 + 1e-3, (d, r, at / RATE)


def test_sigterm_stops_listening_cleanly(virtual_mic, tiny_bundle):
    # As a service manager stops it: exit 0 and the summary, like Ctrl-C. Its output is a
    # pipe, so --meter says why it draws nothing (tests/test_view.py: in a terminal).
    proc = _kws(virtual_mic, "listen", "--meter", "--model", str(tiny_bundle))
    stderr = Lines(proc.stderr)
    try:
        stderr.wait_for("listening", timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    err = stderr.close()
    assert "kws: no level meter: stdout is not a terminal" in err
    assert re.fullmatch(r"kws: stopped after \d+\.\d s: 0 detections, 0 samples lost", err[-1])


@pytest.mark.slow
@pytest.mark.pulse
def test_vanishing_audio_server_is_one_line_error(tiny_bundle):
    with pulse_server() as mic:  # a server of its own: this test kills it
        proc = _kws(mic, "listen", "--model", str(tiny_bundle))
        stderr = Lines(proc.stderr)
        stderr.wait_for("listening", timeout=60)
        os.kill(mic.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == 2
    err = stderr.close()
    # PortAudio prints its own diagnostics before it; kws says what happened in one line.
    assert [line for line in err if line.startswith("kws: error")] == [err[-1]]
    assert re.fullmatch(r"kws: error: input device \[\d+\] .+ stopped delivering audio "
                        r"\(unplugged, or the audio server went away\)", err[-1])


def test_devices_lists_the_virtual_mic_as_default(virtual_mic):
    out, err = _kws(virtual_mic, "devices").communicate(timeout=30)
    lines = out.splitlines()
    default = [line for line in lines if line.startswith("*")]
    assert len(default) == 1 and "default" in default[0], out + err
    # PulseAudio's default advertises 44,100 Hz, yet opens at the model's 16 kHz: both said.
    rates = lines[lines.index(default[0]) + 1]
    assert "16,000" in rates.split(";")[0] and rates.endswith("kws listen records at 16,000 Hz"), out


def test_invalid_device_name_is_one_line_error(virtual_mic):
    proc = _kws(virtual_mic, "listen", "--device", "no such mic")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    assert err.splitlines() == ["kws: error: no input device matches 'no such mic' "
                                "(see `kws devices`)"]


def test_played_audio_arrives_bit_exact(virtual_mic, tmp_path):
    """What paplay plays comes out of kws's capture path unchanged."""
    rng = np.random.default_rng(1)
    played = rng.integers(-20000, 20000, RATE // 2).astype(np.int16)
    sf.write(tmp_path / "noise.wav", played, RATE, subtype="PCM_16")
    recorder = subprocess.Popen([sys.executable, "-c", RECORDER, str(tmp_path / "rec.npz"), str(len(played))],
                                env=virtual_mic.env, stdout=subprocess.PIPE, text=True)
    assert recorder.stdout.readline() == "recording\n"
    play_started = time.time()
    virtual_mic.play(tmp_path / "noise.wav")
    assert recorder.wait(timeout=60) == 0
    with np.load(tmp_path / "rec.npz") as rec:
        recorded = np.round(rec["samples"] * 32768).astype(np.int32)
        arrivals = rec["arrivals"]
    first = int(np.flatnonzero(recorded)[0])
    assert np.array_equal(recorded[first:first + len(played)], played)
    # From starting paplay to the callback that delivered the first sample (paplay's own
    # start-up included): shown, not asserted, as the machine's load decides it.
    print(f"arrival delay {(arrivals[first // 160] - play_started) * 1000:.0f} ms")


def test_plain_line_and_exec_environment(tmp_path, capfd):
    log = tmp_path / "exec.log"
    report = Report(command=f'echo "$KWS_WORD $KWS_SCORE $KWS_TIME" >> {log}; echo to-stderr')
    report.detection(Detection(1.5, "yes", 0.97))
    report.detection(Detection(3.25, "stop", 0.912))
    report.finish()
    out, err = capfd.readouterr()
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}  yes  0\.97\n\d\d:\d\d:\d\d\.\d{3}  stop  0\.91\n",
                        out)
    assert err.count("to-stderr") == 2  # a command's output never mixes with detections
    assert sorted(log.read_text().splitlines()) == ["stop 0.912 3.250", "yes 0.970 1.500"]


def test_failing_exec_is_reported_not_fatal(capfd):
    report = Report(json_lines=True, command="exit 3")
    report.detection(Detection(1.0, "up", 0.8))
    report.finish()
    out, err = capfd.readouterr()
    record = json.loads(out)
    assert datetime.fromisoformat(record.pop("clock")).tzinfo is not None  # wall clock, ISO 8601
    assert record == {"time": 1.0, "word": "up", "score": 0.8}
    assert "--exec command exited with status 3" in err


def test_exec_never_waits_for_its_command(tmp_path, capfd):
    # The detection is printed and the loop goes on while the command still runs: it started
    # (it said so in the pipe) and has not finished (its hour's sleep) when detection() returns.
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    report = Report(command=f"echo $$ > {fifo}; sleep 3600")
    report.detection(Detection(1.0, "yes", 0.9))
    (shell,) = [os.pidfd_open(int(pid)) for pid in fifo_lines(fifo, 1)]
    assert ended([shell], 0) == [False]
    report.finish(grace=0)  # ended, as when kws stops
    assert ended([shell], 60) == [True]
    assert "stopping 1 --exec command still running" in capfd.readouterr().err


def test_meter_draws_the_level_of_what_arrived(capsys):
    meter = Meter(RATE)
    got = []
    write = meter.tee(got.append)
    # A sine of amplitude 0.1: RMS 0.0707, -23.0 dBFS, 37 dB above the meter's -60-dB floor:
    # 37/60 of its 40 columns, 25 of them.
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(RATE // 10) / RATE)).astype(np.float32)
    write(tone)
    meter.draw()
    assert got[0] is tone  # the detector still gets every block
    assert capsys.readouterr().err == "\r  level  -23.0 dBFS  [" + "#" * 25 + "-" * 15 + "]"
    meter.clear()
    assert capsys.readouterr().err == "\r\033[K"


def _kws(mic, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kws", *args], env=mic.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.pulse
def test_stalled_audio_server_warns_and_stops_at_once(tiny_bundle, tmp_path):

    config = tmp_path / "stall.yaml"
    config.write_text("audio:\n  stall_seconds: 1.0\n")
    with pulse_server() as mic:
        proc = _kws(mic, "listen", "--model", str(tiny_bundle), "--config", str(config))
        stderr = Lines(proc.stderr)
        try:
            stderr.wait_for("listening", timeout=60)  # the stream has started
            os.kill(mic.pid, signal.SIGSTOP)
            try:
                stderr.wait_for("no audio has arrived", timeout=30)
                proc.send_signal(signal.SIGTERM)
                # PortAudio's close never returns while the server is stopped: exiting at all,
                # with the server still stopped, is what shows it was not waited for.
                assert proc.wait(timeout=30) == 0
                # Listing devices with the server stalled: a bounded wait, then one line.
                devices = _kws(mic, "devices")
                out, err = devices.communicate(timeout=30)
                assert devices.returncode == 2 and out == ""
                assert err.strip().splitlines() == [
                    "kws: error: the audio system did not answer within 5 s (starting PortAudio); "
                    "is the audio server (PulseAudio, PipeWire) stalled?"]
            finally:
                os.kill(mic.pid, signal.SIGCONT)
        finally:
            proc.kill()
    err = stderr.close()
    assert any("still waiting" in line for line in err)
    assert err[-1].startswith("kws: stopped after"), err


def test_json_has_stream_time_and_wall_clock(capsys):
    report = Report(json_lines=True)
    before = time.time()
    report.start()
    after = time.time()
    report.detection(Detection(2.0, "yes", 0.9))
    record = json.loads(capsys.readouterr().out)
    clock = datetime.fromisoformat(record["clock"]).timestamp()
    # Stream time 0 is the wall clock of start(), which came between the two readings (the
    # clock is written to the millisecond, cut).
    assert before + 2.0 - 0.001 <= clock <= after + 2.0
    assert record["time"] == 2.0


def fifo_lines(fifo: Path, count: int) -> list[str]:
    """The first ``count`` lines commands write into the named pipe ``fifo``, as they come."""
    fd = os.open(fifo, os.O_RDWR)  # read-write: no end of file between two writers
    text = b""
    try:
        while text.count(b"\n") < count:
            assert select.select([fd], [], [], 60)[0], f"no line from the commands: {text!r}"
            text += os.read(fd, 4096)
    finally:
        os.close(fd)
    return text.decode().splitlines()[:count]


def ended(pid_fds: list[int], wait: float) -> list[bool]:
    """Whether each process (a ``pidfd_open`` descriptor) has ended, waiting up to ``wait`` s."""
    return [bool(select.select([fd], [], [], wait)[0]) for fd in pid_fds]


def test_exec_hooks_are_capped_and_killed_at_exit(tmp_path, capfd):
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)
    report = Report(command=f"sleep 3600 & echo $! > {fifo}; wait", max_hooks=2)
    for i in range(3):
        report.detection(Detection(float(i), "yes", 0.9))
    assert "2 commands still running; not running it for yes" in capfd.readouterr().err
    sleeps = [os.pidfd_open(int(pid)) for pid in fifo_lines(fifo, 2)]  # grandchildren of kws
    assert ended(sleeps, 0) == [False, False]
    report.finish(grace=0.3)
    # An hour's sleep that ends within the minute was ended: by finish, group and all.
    assert ended(sleeps, 60) == [True, True]
