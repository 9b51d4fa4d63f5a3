"""``kws record`` end to end on a private PulseAudio server's virtual microphone (tests/pulse.py).

A word spoken by espeak-ng is played into the microphone each time ``kws record`` says
``speak now``; one prompt gets nothing (an empty take, asked for again), one a quiet take.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kws.commands.record import check_take
from pulse import Lines, virtual_mic  # noqa: F401 (a fixture)

RATE = 16000


def _word(tmp_path, gain: float):
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "lights"], check=True)
    audio, rate = sf.read(raw, dtype="float32")
    if rate != RATE:
        import soxr
        audio = soxr.resample(audio, rate, RATE)
    audio = audio / np.max(np.abs(audio)) * gain
    pad = np.zeros(RATE // 5, np.float32)
    path = tmp_path / f"word{gain:g}.wav"
    sf.write(path, np.concatenate([pad, audio, pad]), RATE, subtype="PCM_16")
    return path, len(audio) / RATE


@pytest.mark.slow
@pytest.mark.espeak
def test_record_takes_from_the_virtual_microphone(virtual_mic, tmp_path):  # noqa: F811
    loud, seconds = _word(tmp_path, 0.5)
    quiet, _ = _word(tmp_path, 0.02)
    out = tmp_path / "takes"
    proc = subprocess.Popen([sys.executable, "-m", "kws", "record", "lights", "--count", "2", "--out",
                             str(out), "--countdown", "1", "--seconds", "1.5"], env=virtual_mic.env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = Lines(proc.stderr)
    try:
        err.wait_for("speak now", timeout=60)
        virtual_mic.play(loud)
        err.wait_for("speak now", timeout=30)      # the second take: nothing said
        err.wait_for("empty take", timeout=30)
        err.wait_for("speak now", timeout=30)      # asked again: a quiet take
        virtual_mic.play(quiet)
        assert proc.wait(timeout=30) == 0, "\n".join(err.lines)
    finally:
        proc.kill()
    text = "\n".join(err.close())  # every line, up to the end of the pipe
    print(text)
    assert "take 1/2" in text and "too quiet" in text and "kept lights-02.wav" in text
    assert "dBFS  [" not in text  # no level meter redrawn into a pipe or a log
    files = sorted(out.glob("*.wav"))
    assert [f.name for f in files] == ["lights-01.wav", "lights-02.wav"]
    for f, gain in zip(files, (0.5, 0.02)):
        audio, rate = sf.read(f, dtype="float32")
        assert rate == RATE
        # Trimmed to the word and a margin, not the whole 1.5 s.
        assert seconds * 0.7 < len(audio) / RATE < seconds + 0.35, (f, len(audio) / RATE)
        assert 0.6 * gain < np.max(np.abs(audio)) < 1.2 * gain


def test_check_take_flags_empty_quiet_and_clipped():
    rng = np.random.default_rng(0)
    silence = np.zeros(RATE, np.float32)
    assert check_take(silence, RATE)[0] is None
    word = np.zeros(RATE * 2, np.float32)
    word[RATE // 2:RATE] = np.sin(np.arange(RATE // 2) * 0.2) * 0.5
    take, warnings = check_take(word + rng.normal(0, 1e-4, len(word)).astype(np.float32), RATE)
    assert warnings == [] and 0.6 * RATE < len(take) < 0.75 * RATE
    assert any("too quiet" in w for w in check_take(word * 0.02, RATE)[1])
    assert any("clipped" in w for w in check_take(np.clip(word * 4, -1, 1), RATE)[1])
