"""Hard-negative mining (``python -m kws_train.mine``, no TensorFlow) on the reference audio."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from conftest import DATA
from reference import AUDIO, expected


def test_mining_cuts_a_window_wherever_the_model_fires(tmp_path):
    # At the test model's own thresholds (0.7), each of its recorded detections on the
    # reference audio has a mined window of that word ending at or after it (at the peak of
    # the run of hops), and each window is the second of audio the classifier saw there.
    out = tmp_path / "mined"
    result = subprocess.run([sys.executable, "-m", "kws_train.mine", "--model", str(DATA / "tiny_bundle"),
                             "--config", str(DATA / "tiny.yaml"), "--audio", str(AUDIO), "--out", str(out),
                             "--threshold", "0.7"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    windows = sorted(out.glob("*.wav"))
    mined = [(int(p.stem.split("_")[1]), p.stem.split("_")[2]) for p in windows]  # (end sample, word)
    assert summary["windows"] == len(windows) and json.loads((out / "mined.json").read_text()) == summary
    for d in expected("tiny").detections:
        assert any(word == d["word"] and d["time"] <= end / 16000 <= d["time"] + 1.0 for end, word in mined), d
    audio = sf.read(AUDIO, dtype="int16")[0]
    for path, (end, _) in zip(windows, mined):
        window, rate = sf.read(path, dtype="int16")
        assert rate == 16000 and np.array_equal(window, audio[end - 16000:end])
