"""Real speech for tests: espeak-ng speaks words; helpers lay them out as Speech Commands does.

Nothing here needs ``../shared``: every clip is synthesised on the spot (espeak-ng takes about
10 ms a word), so a fresh clone can run the suite.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws.audio.files import read_audio, write_wav

RATE = 16000
# Accents x voice variants x speeds x pitches; tests pick disjoint subsets for train and test.
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan"]
VARIANTS = ["", "+m1", "+m3", "+m5", "+f1", "+f2", "+f3", "+f4", "+klatt", "+croak"]


def voices(count: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """``count`` distinct ``(voice, words_per_minute, pitch)`` triples, reproducibly shuffled."""
    rng = np.random.default_rng(seed)
    combos = [(a + v, s, p) for a in ACCENTS for v in VARIANTS for s in (120, 150, 180)
              for p in (30, 50, 70)]
    order = rng.permutation(len(combos))[:count]
    return [combos[i] for i in order]


def speak(word: str, voice: tuple[str, int, int], tmp: Path) -> np.ndarray:
    """``word`` spoken by espeak-ng, as float32 16 kHz mono, trimmed to its speech."""
    if shutil.which("espeak-ng") is None:  # a test that forgot its `espeak` marker skips too
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    name, speed, pitch = voice
    path = tmp / f"_say_{word}_{name}_{speed}_{pitch}.wav".replace("+", "_")
    subprocess.run(["espeak-ng", "-v", name, "-s", str(speed), "-p", str(pitch), "-w", str(path), word],
                   check=True, capture_output=True)
    audio = read_audio(path, RATE)
    path.unlink()
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0]:loud[-1] + 1] * (0.5 / np.abs(audio).max())


def one_second(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place speech at a random offset in a one-second clip (cut if longer)."""
    speech = speech[:RATE]
    clip = np.zeros(RATE, dtype=np.float32)
    start = int(rng.integers(0, RATE - len(speech) + 1))
    clip[start:start + len(speech)] = speech
    return clip


def make_dataset(root: Path, words: list[str], unknown_words: list[str], n_voices: int = 24,
                 ext: str = "wav", seed: int = 0) -> Path:
    """A tiny dataset in the official Speech Commands layout, spoken by espeak-ng.

    Each voice is one "speaker"; a speaker's clips all go to one split (the last sixth of the
    voices to validation, none to testing unless listed), with ``validation_list.txt``,
    ``testing_list.txt`` and a ``_background_noise_`` folder of two noise recordings.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    speakers = voices(n_voices, seed)
    n_val = max(1, n_voices // 6)
    val, test = [], []
    for w in words + unknown_words:
        (root / w).mkdir(exist_ok=True)
        for i, voice in enumerate(speakers):
            speaker = f"{i:08x}"
            rel = f"{w}/{speaker}_nohash_0.{ext}"
            write_wav(root / rel, one_second(speak(w, voice, root), rng), RATE)
            if i < n_val:
                val.append(rel)
            elif i < 2 * n_val:
                test.append(rel)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise_dir = root / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    write_wav(noise_dir / "white_noise.wav", 0.05 * rng.standard_normal(RATE * 10), RATE)
    brown = np.cumsum(rng.standard_normal(RATE * 10))
    write_wav(noise_dir / "brown_noise.wav", 0.3 * brown / np.abs(brown).max(), RATE)
    return root


def word_stream(words: list[str], voice_set: list[tuple[str, int, int]], tmp: Path,
                gap_seconds: float = 1.5, noise_rms: float = 0.003,
                seed: int = 0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Words separated by quiet noise; returns ``(audio, [(word, start_s, end_s), ...])``.

    The stream starts with one gap, so nothing is spoken before the first full window.
    """
    rng = np.random.default_rng(seed)
    pieces, labels, t = [], [], 0
    for i, w in enumerate(words):
        gap = np.zeros(int(gap_seconds * RATE), np.float32)
        speech = speak(w, voice_set[i % len(voice_set)], tmp)
        pieces += [gap, speech]
        t += len(gap)
        labels.append((w, t / RATE, (t + len(speech)) / RATE))
        t += len(speech)
    pieces.append(np.zeros(int(gap_seconds * RATE), np.float32))
    audio = np.concatenate(pieces)
    audio += noise_rms * rng.standard_normal(len(audio)).astype(np.float32)
    return audio, labels
