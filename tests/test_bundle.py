"""Bundles: atomic writes, metadata round trip, and a clear error when the front ends disagree."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import in_process
from kws.bundle import BundleError, bundle_writer, check_posteriors, load_bundle, write_metadata
from kws.config import load_config, with_overrides
from kws.features import FrontEnd, mel_basis

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def write(directory, config, marker="v1"):
    write_metadata(directory, labels=LABELS, sample_rate=config.audio.sample_rate,
                   clip_seconds=config.audio.clip_seconds, features=config.features,
                   basis=mel_basis(config.features, config.audio.sample_rate),
                   thresholds={"yes": 0.8}, marker=marker)


def test_round_trip_and_frontend(tmp_path):
    config = load_config()
    with bundle_writer(tmp_path / "m") as staging:
        write(staging, config)
    bundle = load_bundle(tmp_path / "m", config)
    assert bundle.labels == LABELS and bundle.words == ["yes", "no"]
    assert bundle.thresholds == {"yes": 0.8} and bundle.metadata["marker"] == "v1"
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert np.array_equal(bundle.frontend().compute(x), FrontEnd(config.features, 16000).compute(x))


def test_failed_write_leaves_previous_bundle(tmp_path):
    config = load_config()
    with bundle_writer(tmp_path / "m") as staging:
        write(staging, config, "v1")
    with pytest.raises(RuntimeError):
        with bundle_writer(tmp_path / "m") as staging:
            write(staging, config, "v2")
            raise RuntimeError("crash half way")
    assert load_bundle(tmp_path / "m").metadata["marker"] == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left behind
    with bundle_writer(tmp_path / "m") as staging:
        write(staging, config, "v2")
    assert load_bundle(tmp_path / "m").metadata["marker"] == "v2"


def test_mismatched_features_are_an_error(tmp_path):
    config = load_config()
    with bundle_writer(tmp_path / "m") as staging:
        write(staging, config)
    other = with_overrides(config, {"features.n_mels": 32})
    with pytest.raises(BundleError, match=r"features\.n_mels=40, but the config says 32"):
        load_bundle(tmp_path / "m", other)


def test_missing_or_broken_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(BundleError, match="malformed metadata"):
        load_bundle(tmp_path)


def edit_metadata(bundle: Path, change) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    meta = change(meta)
    (bundle / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("meta, message", [
    ([], "a JSON object is expected, got list"),
    (None, "got null"),
    ("thresholds-list", "'thresholds' must be an object"),
    ("threshold-range", "thresholds.yes must be a number between 0 and 1, got 1.5"),
    ("threshold-nan", "thresholds.yes must be a number between 0 and 1"),
    ("threshold-key", "thresholds: 'of' is not one of the model's words"),
])
def test_malformed_metadata_is_one_line(bundle_copy, capsys, meta, message):
    def change(original):
        if meta == "thresholds-list":
            return {**original, "thresholds": [0.5, 0.6]}
        if meta == "threshold-range":
            return {**original, "thresholds": {"yes": 1.5}}
        if meta == "threshold-nan":
            return {**original, "thresholds": {"yes": float("nan")}}
        if meta == "threshold-key":
            return {**original, "thresholds": {"of": 0.5}}
        return meta

    edit_metadata(bundle_copy, change)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bundle(bundle_copy)


def _npz(path: Path, kind: str) -> None:
    good = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing key":
        np.savez(path, other=np.zeros(3))
    elif kind == "wrong type":
        np.savez(path, basis=np.array([["a", "b"]]))
    elif kind == "wrong shape":
        np.savez(path, basis=np.zeros((40, 7), np.float32))


@pytest.mark.parametrize("kind", ["truncated", "empty", "missing key", "wrong type", "wrong shape"])
def test_broken_frontend_is_one_line(bundle_copy, spoken, capsys, kind):
    _npz(bundle_copy / "frontend.npz", kind)
    code, err = in_process(capsys, "replay", str(spoken[2]), "--model", str(bundle_copy))
    assert code == 2 and "frontend.npz" in err and err.count("\n") == 1, err


def test_outputs_that_are_not_probabilities_are_refused(bundle_copy, monkeypatch):
    check_posteriors(np.array([0.1, 0.9]), "m")
    for bad in ([188.3, -4.0, 2.0], [np.nan, 0.5], [0.5, 0.2]):
        with pytest.raises(BundleError):
            check_posteriors(np.array(bad), "m")
    from kws import inference

    monkeypatch.setattr(inference.Classifier, "__call__",
                        lambda self, window: np.linspace(-3, 188.3, self.num_classes, dtype=np.float32))
    with pytest.raises(BundleError, match="not probabilities.*logits"):
        load_bundle(bundle_copy).classifier()
