"""A spoken test stream for the detector tests: command words by voices the tiny model never heard."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.audio.files import write_wav
from speech import RATE, voices, word_stream

# The tiny model trains on the first 24 of voices(24, 0); these come from far down the list.
TEST_VOICES = voices(200, 0)[150:]
STREAM_WORDS = ["yes", "no", "up", "stop", "no", "yes", "stop", "up"]


def spoken_stream(tmp: Path) -> tuple[np.ndarray, list[tuple[str, float, float]], Path]:
    """``(audio, [(word, start_s, end_s)], wav path)``: words with 1.5 s of quiet noise between."""
    audio, labels = word_stream(STREAM_WORDS, TEST_VOICES, tmp, gap_seconds=1.5, noise_rms=0.003)
    path = tmp / "spoken.wav"
    write_wav(path, audio, RATE)
    return audio, labels, path
