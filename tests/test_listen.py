"""``kws listen`` end to end, on a real audio server: a private PulseAudio with a virtual mic.

Words spoken by espeak-ng voices the tiny model never heard are played into the virtual
microphone with ``paplay`` while ``kws listen --json`` runs as a subprocess, exactly as a user
would run it; then it gets Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from kws.live import Report
from kws.detector import Detection
from pulse import Lines, VirtualMic, pulse_server, virtual_mic  # noqa: F401 (a fixture)

RATE = 16000

# Records from the default input through kws's own capture path; saves the samples and the
# wall-clock time each 160-sample block arrived.
RECORDER = """
import sys, time
import numpy as np
from kws.audio.microphone import Microphone, find_input_device
from kws.audio.ring import RingBuffer
seconds, out = float(sys.argv[1]), sys.argv[2]
ring = RingBuffer(int(16000 * (seconds + 1)))
arrivals = []
def write(block):
    ring.write(block)
    arrivals.append(time.time())
with Microphone(find_input_device(), 16000, 160, write):
    print("recording", flush=True)
    time.sleep(seconds)
samples = np.zeros(len(ring), np.float32)
ring.read_into(samples)
np.savez(out, samples=samples, arrivals=np.array(arrivals))
"""


def _kws(mic: VirtualMic, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kws", *args], env=mic.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.slow
def test_listen_detects_words_played_into_the_microphone(virtual_mic, tiny_bundle, spoken, tmp_path):
    # The first four words (voices the tiny model never heard): played in real time, so short.
    audio, labels, _ = spoken
    labels = labels[:4]
    wav = tmp_path / "four_words.wav"
    sf.write(wav, audio[:round((labels[-1][2] + 1.5) * RATE)], RATE, subtype="PCM_16")
    words = [word for word, _, _ in labels]
    config = tiny_bundle.parent / "tiny.yaml"  # what it was trained with: the tiny words
    exec_log = tmp_path / "exec.log"
    launched = time.monotonic()
    proc = _kws(virtual_mic, "listen", "--json", "--model", str(tiny_bundle), "--config",
                str(config), "--exec", f'echo "$KWS_WORD" >> {exec_log}')
    stderr = Lines(proc.stderr)
    try:
        stderr.wait_for("listening", timeout=60)
        listening = time.monotonic()
        virtual_mic.play(wav)
        # No waiting: what is still in the ring when it stops is processed before it exits.
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    err = stderr.close()
    print(f"start-up {listening - launched:.2f} s\n" + "\n".join(err) + "\n" + out)
    assert "kws: words: yes (0.70), no (0.70), up (0.70), stop (0.70)" in err
    detections = [json.loads(line) for line in out.splitlines()]
    assert [d["word"] for d in detections] == words, (out, err)
    # Stream time 0 is when listening started, just before the file started playing.
    for d, (word, start, end) in zip(detections, labels):
        assert start < d["time"] < end + 1.0, (d, word, start, end)
    assert re.fullmatch(r"kws: stopped after \d+\.\d s: 4 detections, 0 samples lost", err[-1])
    assert exec_log.read_text().split() == words


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
    """What paplay plays comes out of kws's capture path unchanged, within milliseconds."""
    rng = np.random.default_rng(1)
    played = rng.integers(-20000, 20000, RATE // 2).astype(np.int16)
    sf.write(tmp_path / "noise.wav", played, RATE, subtype="PCM_16")
    recorder = subprocess.Popen([sys.executable, "-c", RECORDER, "1.5", str(tmp_path / "rec.npz")],
                                env=virtual_mic.env, stdout=subprocess.PIPE, text=True)
    assert recorder.stdout.readline() == "recording\n"
    play_started = time.time()
    virtual_mic.play(tmp_path / "noise.wav")
    assert recorder.wait(timeout=30) == 0
    with np.load(tmp_path / "rec.npz") as rec:
        recorded = np.round(rec["samples"] * 32768).astype(np.int32)
        arrivals = rec["arrivals"]
    first = int(np.flatnonzero(recorded)[0])
    assert np.array_equal(recorded[first:first + len(played)], played)
    # From starting paplay to the callback that delivered the first sample (paplay's own
    # start-up included).
    delay = arrivals[first // 160] - play_started
    print(f"arrival delay {delay * 1000:.0f} ms")
    assert delay < 0.5


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
