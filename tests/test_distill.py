"""Distillation (``train.teacher``): soft targets from a teacher bundle, and a training run that
learns from them (needs TensorFlow)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_WORDS, run_kws

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.data.speech_commands import labels_for, list_clips, load_audio
from kws.features import FrontEnd
from kws.errors import KwsError
from kws_train.augment import Augmenter

pytestmark = pytest.mark.train
TINY_CONFIG = Path(__file__).parent / "data" / "tiny.yaml"


def test_teacher_targets_mix_its_posteriors_with_the_label(tiny_bundle, tiny_dataset):
    from kws_train.pipeline import CLIP, PARTIAL, BatchMaker, Teacher

    config = with_overrides(load_config(), {"words": TINY_WORDS})
    clips = load_audio(list_clips(tiny_dataset, TINY_WORDS, "training"), 16000, 16000)
    frontend = FrontEnd(config.features, 16000)
    teacher = Teacher(str(tiny_bundle), labels_for(TINY_WORDS), 0.25)
    maker = BatchMaker(clips.waves, clips.targets, frontend, Augmenter(config.train.augment, [], 16000),
                       0, 1, teacher=teacher)
    kinds = np.array([CLIP, CLIP, PARTIAL, CLIP, CLIP, PARTIAL])
    x, y = maker(np.stack([np.arange(6), kinds], 1), np.array([0, 0, 0]))
    own = load_bundle(tiny_bundle).classifier().predict(x)  # the teacher's view of this very batch
    labels = np.where(kinds == CLIP, clips.targets[:6], 1)  # partial words are _unknown_ (1)
    onehot = np.eye(len(own[0]))[labels]
    taught = kinds == CLIP
    assert y.shape == own.shape and np.allclose(y[taught], 0.25 * own[taught] + 0.75 * onehot[taught], atol=1e-6)
    assert np.array_equal(y[~taught], onehot[~taught])  # made-up negatives keep their label
    assert np.allclose(y.sum(1), 1, atol=1e-5)
    with pytest.raises(KwsError, match="labels"):
        Teacher(str(tiny_bundle), labels_for(["yes", "no"]), 0.5)


def test_kws_train_with_a_teacher(tiny_bundle, tiny_dataset, tmp_path):
    out = tmp_path / "student"
    config = tmp_path / "student.yaml"
    config.write_text(TINY_CONFIG.read_text().replace("epochs: 12", "epochs: 2")
                      + f"  teacher: {tiny_bundle}\n  distill_weight: 0.5\n")
    run_kws("train", "--config", str(config), "--data", str(tiny_dataset), "--out", str(out),
            "--threads", "1", timeout=600)
    bundle = load_bundle(out)
    assert bundle.labels == labels_for(TINY_WORDS)
    assert bundle.metadata["training"]["config"]["teacher"] == str(tiny_bundle)
