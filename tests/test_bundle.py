"""Bundles: atomic writes, metadata round trip, and a clear error when the front ends disagree."""

import numpy as np
import pytest

from kws.bundle import BundleError, bundle_writer, load_bundle, write_metadata
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
