"""The feature front end: streaming equals batch, batch equals librosa, frame counts as documented."""

import librosa
import numpy as np
import pytest

from kws.config import load_config, with_overrides
from kws.features import FrontEnd, mel_basis
from kws.audio.files import read_audio
from reference import AUDIO, labels

RATE = 16000


def config(kind="log_mel"):
    return with_overrides(load_config(), {"features.kind": kind})


def signals():
    rng = np.random.default_rng(1)
    t = np.arange(RATE) / RATE
    start = round((labels()[0].start - 0.2) * RATE)  # a real person's word, committed
    speech = read_audio(AUDIO, RATE)[start:start + RATE]
    return {"tone": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
            "noise": (0.1 * rng.standard_normal(RATE)).astype(np.float32),
            "speech": speech,
            "silence": np.zeros(RATE, np.float32)}


def librosa_features(x, params):
    mel = librosa.feature.melspectrogram(
        y=x, sr=RATE, n_fft=480, hop_length=160, win_length=480, window="hann", center=False,
        power=2.0, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax)
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    if params.kind == "mfcc":
        db = librosa.feature.mfcc(S=db, n_mfcc=params.n_mfcc, dct_type=2, norm="ortho")
    return db.T


def test_one_second_gives_98_frames():
    frontend = FrontEnd(config().features, RATE)
    assert frontend.window == 480 and frontend.hop == 160
    assert frontend.compute(np.zeros(RATE, np.float32)).shape == (98, 40)
    assert frontend.num_frames(479) == 0 and frontend.num_frames(480) == 1
    assert FrontEnd(config("mfcc").features, RATE).compute(np.zeros(RATE)).shape == (98, 20)


@pytest.mark.parametrize("kind", ["log_mel", "mfcc"])
def test_batch_matches_librosa(kind):
    params = config(kind).features
    frontend = FrontEnd(params, RATE)
    for name, x in signals().items():
        ours, theirs = frontend.compute(x), librosa_features(x, params)
        assert ours.shape == theirs.shape
        # dB values span ~-100..+40; float32 arithmetic agrees to a few 1e-5 dB.
        assert np.abs(ours - theirs).max() < 1e-3, name


@pytest.mark.parametrize("kind", ["log_mel", "mfcc"])
def test_random_chunks_equal_batch(kind):
    frontend = FrontEnd(config(kind).features, RATE)
    rng = np.random.default_rng(7)
    for name, x in signals().items():
        x = np.concatenate([x, x[::-1]])
        stream, parts, i = frontend.incremental(), [], 0
        while i < len(x):
            n = int(rng.choice([0, 1, 7, 160, 333, 1024, 4000]))
            parts.append(stream.push(x[i:i + n]))
            i += n
        assert np.abs(np.concatenate(parts) - frontend.compute(x)).max() <= 1e-5, name


def test_stream_returns_only_new_frames():
    stream = FrontEnd(config().features, RATE).incremental()
    assert stream.push(np.zeros(479, np.float32)).shape == (0, 40)
    assert stream.push(np.zeros(1, np.float32)).shape == (1, 40)
    assert stream.push(np.zeros(159, np.float32)).shape == (0, 40)
    assert stream.push(np.zeros(161, np.float32)).shape == (2, 40)  # 800 samples: 3 frames in all
    assert stream.push(np.zeros(1600, np.float32)).shape == (10, 40)


def test_explicit_basis_equals_librosa_basis():
    params = config().features
    basis = mel_basis(params, RATE)
    expected = librosa.filters.mel(sr=RATE, n_fft=480, n_mels=40, fmin=params.fmin, fmax=params.fmax)
    assert np.allclose(basis, expected, atol=1e-7)
    with pytest.raises(ValueError, match="shape"):
        FrontEnd(params, RATE, basis[:, :-1])
