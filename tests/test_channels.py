"""Speaker and channel augmentation (kws_train.channels, Augmenter): each effect does what its
name says on a signal whose answer is known by construction (a tone, an impulse, a burst)."""

from __future__ import annotations

import numpy as np
import pytest

from kws.config import load_config
from kws.data.noise import rms
from kws_train import channels
from kws_train.augment import Augmenter, mel_centres, vtlp

SR = 16000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * SR / len(wave))


def burst(start: float, length: float) -> np.ndarray:
    """A 1-s clip silent but for a 1-kHz burst from ``start`` for ``length`` seconds."""
    out = np.zeros(SR, np.float32)
    a, b = int(start * SR), int((start + length) * SR)
    out[a:b] = tone(1000, 1.0)[: b - a]
    return out


def test_speed_raises_pitch_and_shortens_the_word_in_place():
    fast = channels.speed(burst(0.3, 0.4), 1.25, SR)
    assert len(fast) == SR
    assert peak_hz(fast) == pytest.approx(1250, abs=10)
    on = np.flatnonzero(np.abs(fast) > 0.05)
    assert (on[-1] - on[0]) / SR == pytest.approx(0.4 / 1.25, abs=0.01)
    assert (on[0] + on[-1]) / 2 / SR == pytest.approx(0.5, abs=0.01)  # centred where it was
    slow = channels.speed(burst(0.3, 0.4), 0.8, SR)
    assert peak_hz(slow) == pytest.approx(800, abs=10) and len(slow) == SR


def test_narrowband_removes_everything_above_4_khz_and_keeps_speech_band():
    high, low = channels.narrowband(tone(6000), SR), channels.narrowband(tone(1000), SR)
    assert rms(high) < 0.01 * rms(tone(6000))
    assert rms(low) == pytest.approx(rms(tone(1000)), rel=0.05)
    assert rms(channels.narrowband(tone(150), SR, telephone=True)) < 0.2 * rms(tone(150))


def test_ulaw_error_is_relative_to_level():
    x = np.linspace(-1, 1, 2001).astype(np.float32)
    err = np.abs(channels.ulaw(x) - x)
    assert err.max() < 0.05 and err[np.abs(x) < 0.01].max() < 0.002  # fine steps near zero


def test_room_keeps_the_direct_path_in_place_and_adds_a_tail():
    rng = np.random.default_rng(0)
    impulse = channels.room_impulse(0.6, rng, SR)
    assert impulse[0] == pytest.approx(1.0) and len(impulse) > 0.2 * SR
    dry = burst(0.2, 0.2)
    wet = channels.reverberate(dry, impulse)
    assert len(wet) == SR and rms(wet) == pytest.approx(rms(dry), rel=1e-3)
    assert np.flatnonzero(np.abs(wet) > 0.01)[0] == np.flatnonzero(np.abs(dry) > 0.01)[0]
    tail = slice(int(0.45 * SR), int(0.6 * SR))  # after the burst: silent dry, ringing wet
    assert rms(dry[tail]) == 0 and rms(wet[tail]) > 0.01 * rms(wet)
    longer = channels.room_impulse(0.6, np.random.default_rng(0), SR)
    assert np.array_equal(impulse, longer)  # seeded: the same room again


def test_colour_changes_the_spectrum_not_the_level():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(SR).astype(np.float32) * 0.1
    bands = lambda x: np.add.reduceat(np.abs(np.fft.rfft(x)) ** 2, np.arange(0, 8001, 100))  # noqa: E731
    change = []
    for _ in range(10):
        coloured = channels.colour(noise, rng, 12.0, SR)
        assert rms(coloured) == pytest.approx(rms(noise), rel=1e-3)
        change.append(np.abs(10 * np.log10(bands(coloured)[1:-1] / bands(noise)[1:-1])).max())
    assert max(change) > 6  # peaking bands of up to +-12 dB


def test_vtlp_moves_a_formant_up_by_alpha():
    features = load_config().features
    centres = mel_centres(features)
    band = int(np.argmin(np.abs(centres - 1000)))
    x = np.full((3, len(centres)), -80.0, np.float32)
    x[:, band] = 0.0
    assert np.array_equal(vtlp(x, centres, 1.0), x)
    moved = vtlp(x, centres, 1.2)
    assert centres[int(np.argmax(moved[0]))] == pytest.approx(1200, rel=0.06)
    assert mel_centres(features.model_copy(update={"kind": "mfcc"})) is None


def test_augmenter_applies_each_effect_only_with_its_probability():
    params = load_config().train.augment.model_copy(update={
        "noise_probability": 0.0, "gain_db": (0.0, 0.0), "time_shift_ms": 0.0})
    clip = burst(0.3, 0.4)
    plain = Augmenter(params, [], SR)
    assert plain.rooms is None  # room_probability 0: no room is simulated
    assert np.allclose(plain.waveform(clip, np.random.default_rng(0)), clip)
    narrow = Augmenter(params.model_copy(update={"narrowband_probability": 1.0}), [], SR)
    high = tone(6000)
    assert rms(narrow.waveform(high, np.random.default_rng(0))) < 0.05 * rms(high)
    rooms = Augmenter(params.model_copy(update={"room_probability": 1.0, "rooms": 2}), [], SR, seed=3)
    assert len(rooms.rooms.impulses) == 2
    assert not np.allclose(rooms.waveform(clip, np.random.default_rng(0)), clip)
