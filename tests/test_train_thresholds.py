"""Per-word thresholds chosen on labelled validation streams and written into the bundle."""

import json
import shutil

import pytest
from conftest import TINY_WORDS, run_kws

from kws.bundle import load_bundle
from kws_train.thresholds import main

pytestmark = pytest.mark.slow


def test_thresholds_from_a_validation_stream(tiny_bundle, tiny_dataset, tmp_path, capsys):
    config = tiny_bundle.parent / "tiny.yaml"
    wav, labels = tmp_path / "val.wav", tmp_path / "val.csv"
    run_kws("make-stream", "--config", str(config), "--data", str(tiny_dataset), "--split",
            "validation", "--minutes", "1", "--out", str(wav), "--labels", str(labels))
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    negatives = tmp_path / "negatives.wav"  # other words only: no command may fire on them
    run_kws("make-stream", "--config", str(config), "--negatives", str(tiny_dataset / "bird"),
            "--out", str(negatives), "--noise", str(tiny_dataset / "_background_noise_"))
    main(["--model", str(bundle), "--wav", str(wav), "--wav", str(negatives), "--config", str(config)])
    report = json.loads(capsys.readouterr().out)
    loaded = load_bundle(bundle)
    assert set(loaded.thresholds) == set(TINY_WORDS) == set(report["thresholds"])
    assert all(0.5 <= t < 1 for t in loaded.thresholds.values())
    assert loaded.metadata["threshold_selection"]["false_alarms"] == report["false_alarms"]
    assert report["streams"] == [str(wav), str(negatives)]
    assert loaded.smoothing_ms == 250  # the config's: the thresholds hold for it, and the bundle says so
    assert {p.name for p in bundle.iterdir()} == {p.name for p in tiny_bundle.iterdir()}
