"""The synthetic-speech generator (kws_train.synth, the folder train/): espeak-ng only, a few words, seconds."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kws.config import load_config
from kws_train import synth

pytestmark = pytest.mark.espeak  # conftest skips it, saying why, without espeak-ng

WORDS = ["know", "top", "give up"]


def _espeak_voices():
    return [v for v in synth.voices(["espeak"]) if v.base in ("en-us+f3", "en-us+m3")
            and v.rate == 1.0 and v.pitch in (0.88, 1.12)]


def test_clips_are_16k_mono_short_and_not_silent(tmp_path):
    clips = synth.synthesize(WORDS, _espeak_voices(), tmp_path, seed=3)
    assert len(clips) == len(WORDS) * 4 and clips.generated == len(clips)
    assert sum(clips.rejected.values()) == 0
    for clip in clips:
        audio, rate = sf.read(str(clip.path), always_2d=True)
        assert clip.path.is_file() and rate == 16000 and audio.shape[1] == 1
        assert 0.1 <= len(audio) / rate <= 1.0
        assert 0.2 < np.max(np.abs(audio)) < 0.95       # normalised to -12..-1 dBFS
        assert clip.path.name.split("-")[0] == clip.voice.speaker


def test_cache_and_determinism(tmp_path):
    first = synth.synthesize(WORDS[:2], _espeak_voices(), tmp_path / "a", seed=5)
    again = synth.synthesize(WORDS[:2], _espeak_voices(), tmp_path / "a", seed=5)
    assert again.generated == 0 and again.cached == len(first)
    other = synth.synthesize(WORDS[:2], _espeak_voices(), tmp_path / "b", seed=5)
    assert sorted(c.path.name for c in other) == sorted(c.path.name for c in first)
    for a, b in zip(sorted(first, key=lambda c: c.path.name),
                    sorted(other, key=lambda c: c.path.name)):
        assert a.path.read_bytes() == b.path.read_bytes()
    picked = synth.pick_voices(synth.voices(["espeak"]), "know", 3, seed=5)
    assert picked == synth.pick_voices(synth.voices(["espeak"]), "know", 3, seed=5)


def test_broken_output_is_rejected_and_counted(tmp_path, monkeypatch):
    monkeypatch.setitem(synth.RENDERERS, "espeak", lambda v, texts, tmp, seed: [None] * len(texts))
    clips = synth.synthesize(["know"], _espeak_voices()[:1], tmp_path, seed=0)
    assert len(clips) == 0 and clips.rejected["no_output"] == 1
    assert not list(tmp_path.glob("*.wav"))


def test_missing_engine_is_skipped(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(synth.shutil, "which",
                        lambda p: None if p in ("pico2wave", "flite") else real(p))
    engines = {v.engine for v in synth.voices()}
    assert "pico" not in engines and "flite" not in engines and "espeak" in engines
    assert "pico: skipped" in synth.engine_summary()


def test_each_missing_voice_is_named_with_how_to_get_it(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda p: None if p == "pico2wave" else
                        "/usr/bin/festival" if p == "festival" else real(p))
    monkeypatch.setattr(synth, "_festival_voice_dirs", lambda: {"slt_hts": True, "kal": False, "ked": True})
    missing = synth.missing_voices(["pico", "festival"])
    assert missing == {"pico en-US": "pico2wave missing (apt: libttspico-utils, non-free)",
                       "pico en-GB": "pico2wave missing (apt: libttspico-utils, non-free)",
                       "festival kal": "apt: festvox-kallpc16k"}


def test_split_keeps_base_voices_apart():
    vs = synth.voices(["espeak"])
    held = ["espeak:en-us+f3"]
    val = {v.base for v in vs if synth.split_of_voice(v, held) == "validation"}
    assert val == {"en-us+f3"}
    by_fraction = {}
    for v in vs:
        by_fraction.setdefault(v.speaker, set()).add(synth.split_of_voice(v, 0.5))
    assert all(len(s) == 1 for s in by_fraction.values())


def test_near_words_leave_out_commands():
    negatives = synth.negative_words()
    assert not set(negatives) & set(synth.COMMANDS)
    assert set(synth.NEAR_WORDS) == set(synth.COMMANDS) and len(negatives) > 150


def test_the_command_words_are_the_configs():
    assert synth.COMMANDS == load_config().words


def test_command_line(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", synth.__name__, *args], capture_output=True,
                              text=True)
    ok = cli("--words", "know,nine", "--out", str(tmp_path), "--seed", "1",
             "--engines", "espeak", "--per-word", "2")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("4 clips (4 new")
    bad = cli("--words", "know", "--out", str(tmp_path), "--seed", "1", "--engines", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown engine" in bad.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    bad = cli("--words", str(empty), "--out", str(tmp_path), "--seed", "1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_sox_pitch_shift_is_deterministic(tmp_path, monkeypatch):
    """Engines without their own pitch control go through sox, which must not dither at random."""
    monkeypatch.setattr(synth, "NATIVE_PITCH", set())
    voice = [v for v in _espeak_voices() if v.pitch != 1.0][:1]
    a = synth.synthesize(["nine"], voice, tmp_path / "a", seed=1)
    b = synth.synthesize(["nine"], voice, tmp_path / "b", seed=1)
    assert len(a) == 1 and a[0].path.read_bytes() == b[0].path.read_bytes()
