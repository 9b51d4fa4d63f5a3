"""The posterior module alone: smoothing, thresholds, refractory time, re-arming."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kws.config import load_config, with_overrides
from kws.posterior import Posterior, Smoother, Trigger, with_thresholds, word_thresholds

LABELS = ["_silence_", "_unknown_", "yes", "no"]
HOP = 0.02


def onehot(label: str, p: float = 1.0) -> np.ndarray:
    """Posteriors giving ``label`` probability ``p``; the rest goes to silence."""
    v = np.zeros(len(LABELS), np.float32)
    v[0] = 1 - p
    v[LABELS.index(label)] += p
    return v


def run(post: Posterior, frames: list[np.ndarray]) -> list[tuple[float, str]]:
    """Feed one vector per hop; return ``(time, word)`` of each detection."""
    out = []
    for i, probs in enumerate(frames):
        fired = post.update(probs, i * HOP)
        if fired:
            out.append((round(i * HOP, 3), fired[0]))
    return out


def make(smoothing_hops=1, refractory=0.5, thresholds=None) -> Posterior:
    return Posterior(LABELS, thresholds or {"yes": 0.7, "no": 0.7}, smoothing_hops, refractory)


def test_smoother_is_a_moving_average_over_what_it_has():
    s = Smoother(2, 3)
    np.testing.assert_allclose(s.update(np.array([1.0, 0.0])), [1, 0])
    np.testing.assert_allclose(s.update(np.array([0.0, 1.0])), [0.5, 0.5])
    s.update(np.array([0.0, 1.0]))
    np.testing.assert_allclose(s.update(np.array([0.0, 1.0])), [0, 1], atol=1e-6)


def test_one_utterance_one_detection():
    frames = [onehot("yes", 0.1)] * 10 + [onehot("yes", 0.95)] * 60 + [onehot("yes", 0.1)] * 10
    assert run(make(), frames) == [(0.2, "yes")]


def test_word_above_threshold_longer_than_refractory_fires_once():
    frames = [onehot("yes", 0.95)] * 200  # 4 s above threshold, refractory 0.5 s
    assert run(make(), frames) == [(0.0, "yes")]


def test_same_word_twice_is_reported_twice():
    # Unlike RecognizeCommands: no other label has to win in between, it only has to drop.
    word, pause = [onehot("yes", 0.95)] * 20, [onehot("yes", 0.3)] * 40
    assert run(make(), word + pause + word) == [(0.0, "yes"), (1.2, "yes")]


def test_refractory_swallows_a_confusion_inside_one_utterance():
    # "no" flickers up first, then "yes" wins for the rest of the utterance.
    frames = [onehot("no", 0.8)] * 3 + [onehot("yes", 0.9)] * 40 + [onehot("yes", 0.0)] * 5
    assert run(make(refractory=0.3), frames) == [(0.0, "no")]


def test_silence_and_unknown_are_never_reported():
    frames = [onehot("_unknown_", 1.0)] * 20 + [onehot("_silence_", 1.0)] * 20
    assert run(make(), frames) == []


def test_smoothing_removes_a_single_spike():
    frames = [onehot("yes", 0.0)] * 5 + [onehot("yes", 1.0)] + [onehot("yes", 0.0)] * 5
    assert run(make(smoothing_hops=1), frames) == [(0.1, "yes")]
    assert run(make(smoothing_hops=5), frames) == []


def test_per_word_thresholds_and_best_score_wins():
    post = make(thresholds={"yes": 0.9, "no": 0.3})
    probs = np.array([0.1, 0.0, 0.5, 0.4], np.float32)  # yes under its 0.9, no over its 0.3
    assert post.update(probs, 0.0) == ("no", pytest.approx(0.4))
    trig = Trigger(np.array([math.inf, math.inf, 0.3, 0.3]), 0.0)
    assert trig.update(np.array([0.0, 0.0, 0.35, 0.6]), 0.0) == 3


def test_threshold_precedence():
    config = load_config()
    config = with_overrides(config, {"posterior.threshold": 0.5,
                                     "posterior.thresholds": {"no": 0.9}})
    assert word_thresholds(["yes", "no", "up"], {"yes": 0.6, "no": 0.4}, config.posterior) == \
        {"yes": 0.6, "no": 0.9, "up": 0.5}
    forced = with_thresholds(config, ["yes", "no", "up"], 0.8).posterior
    assert word_thresholds(["yes", "no", "up"], {"yes": 0.6}, forced) == \
        {"yes": 0.8, "no": 0.8, "up": 0.8}


def test_from_config_uses_hop_for_smoothing_and_seconds_for_refractory():
    config = with_overrides(load_config(), {"detector.hop_ms": 20, "posterior.smoothing_ms": 100,
                                            "posterior.refractory_ms": 600})
    post = Posterior.from_config(LABELS, {}, config)
    assert len(post.smoother._history) == 5
    assert post.trigger.refractory == pytest.approx(0.6)
    assert np.isinf(post.trigger.thresholds[:2]).all()


def test_smoothing_the_bundle_chose_with_its_thresholds_unless_the_user_sets_one(tmp_path, tiny_bundle):
    import json
    import shutil

    from kws.bundle import BundleError, load_bundle
    from kws.detector import Detector

    config = with_overrides(load_config(), {"detector.hop_ms": 10})
    assert config.posterior.smoothing_ms is None  # by default: the bundle's
    assert Posterior.from_config(LABELS, {}, config, bundle_smoothing_ms=500).smoother._history.shape[0] == 50
    assert Posterior.from_config(LABELS, {}, config).smoother._history.shape[0] == 25  # a bundle that says none: 250
    user = with_overrides(config, {"posterior.smoothing_ms": 100})
    assert Posterior.from_config(LABELS, {}, user, bundle_smoothing_ms=500).smoother._history.shape[0] == 10

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "smoothing_ms": 400}))
    bundle = load_bundle(copy)
    tiny = with_overrides(load_config(), {"words": bundle.words, "detector.hop_ms": 20})
    assert bundle.smoothing_ms == 400
    assert Detector.from_bundle(bundle, tiny).posterior.smoother._history.shape[0] == 20
    (copy / "metadata.json").write_text(json.dumps({**meta, "smoothing_ms": -1}))
    with pytest.raises(BundleError, match="smoothing_ms"):
        load_bundle(copy)
