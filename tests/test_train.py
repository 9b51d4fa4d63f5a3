"""Training (needs TensorFlow): pipeline parity with the front end, balanced epochs, resume,
and the one end-to-end test that trains a tiny model with `kws train` and replays through it.

TensorFlow is imported inside the tests, never at module level: the fast tier
(`pytest -m "not train"`) collects this file without importing it.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_WORDS, run_kws

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.data.speech_commands import labels_for, list_clips, load_audio
from kws.eval.clips import evaluation_audio
from kws.features import FrontEnd
from kws_train.augment import Augmenter

pytestmark = pytest.mark.train
LABELS = labels_for(TINY_WORDS)
TINY_CONFIG = Path(__file__).parent / "data" / "tiny.yaml"


@pytest.fixture(scope="module")
def config():
    return with_overrides(load_config(), {"words": TINY_WORDS})


@pytest.fixture(scope="module")
def clips(tiny_dataset, config):
    return load_audio(list_clips(tiny_dataset, TINY_WORDS, "training"), 16000, 16000)


def no_augmentation(config):
    return config.train.augment.model_copy(update={
        "time_shift_ms": 0, "noise_probability": 0.0, "gain_db": (0.0, 0.0),
        "specaugment_time_masks": 0, "specaugment_freq_masks": 0})


def test_pipeline_features_equal_frontend(clips, config):
    from kws_train.pipeline import CLIP, BatchMaker, features

    from test_features import librosa_features

    frontend = FrontEnd(config.features, 16000)
    batch = features(frontend, clips.waves[:8])
    # Librosa's log-mel of each clip: the features the streaming path computes, by another road.
    expected = np.stack([librosa_features(w, config.features) for w in clips.waves[:8]])
    assert batch.shape == expected.shape and np.abs(batch - expected).max() < 1e-3
    maker = BatchMaker(clips.waves, clips.targets, frontend,
                       Augmenter(no_augmentation(config), [], 16000), 0, 1)
    x, y = maker(np.stack([np.arange(8), np.full(8, CLIP)], 1), np.array([0, 0, 0]))
    assert np.array_equal(x, batch) and np.array_equal(y, clips.targets[:8])


def test_balanced_epochs_and_repeatable_batches(clips, config):
    from kws_train.pipeline import CLIP, PARTIAL, SILENCE_CLIP, BatchMaker, epoch_plan, training_dataset

    plan = epoch_plan(clips.targets, len(LABELS), 0, 1, 50, 20, np.random.default_rng(0))
    kinds = plan[:, 1]
    assert (kinds == SILENCE_CLIP).sum() == 50 and (kinds == PARTIAL).sum() == 20
    counts = np.bincount(clips.targets[plan[kinds == CLIP, 0]], minlength=len(LABELS))
    assert list(counts) == [0] + [50] * (len(LABELS) - 1)  # unknown and every word alike
    assert (clips.targets[plan[kinds == PARTIAL, 0]] >= 2).all()  # cut from command words
    frontend = FrontEnd(config.features, 16000)
    maker = BatchMaker(clips.waves, clips.targets, frontend,
                       Augmenter(config.train.augment, [], 16000), 0, 1)
    first, steps = training_dataset(maker, len(LABELS), 16, 0, 32, 7, 0, 2)
    again, _ = training_dataset(maker, len(LABELS), 16, 0, 32, 7, 1, 2)  # resumed at epoch 1
    assert steps == 3
    batches = [x.numpy() for x, _ in first]
    assert len(batches) == 6 and batches[0].shape == (32, 98, 40)
    assert np.array_equal(batches[3], next(iter(again))[0].numpy())
    x, y = maker(np.array([[2, PARTIAL]] * 4), np.array([1, 2, 3]))
    assert (y == 1).all() and x.shape == (4, 98, 40)


def test_every_architecture_builds(config):
    from kws_train.models import ARCHITECTURES, build

    sample = np.random.default_rng(0).normal(-50, 10, (16, 98, 40)).astype(np.float32)
    for arch in sorted(ARCHITECTURES):
        model = build(arch, sample, len(LABELS), config.train)
        out = model.predict(sample[:2], verbose=0)
        assert out.shape == (2, len(LABELS)) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_resume_continues_after_finished_epochs(clips, tiny_dataset, config, tmp_path):
    import keras

    from kws_train.fit import Workdir, compile_model, fit, new_state
    from kws_train.models import build
    from kws_train.pipeline import BatchMaker, features, training_dataset

    frontend = FrontEnd(config.features, 16000)
    maker = BatchMaker(clips.waves, clips.targets, frontend, Augmenter(config.train.augment, [], 16000), 0, 1)
    val = evaluation_audio(tiny_dataset, "validation", config)
    val_x = features(frontend, val.waves)
    work = Workdir(tmp_path / "work")
    work.reset()

    def run(epochs, state):
        data, steps = training_dataset(maker, len(LABELS), 8, 0, 16, 0, state["epoch"], epochs)
        if state["epoch"]:
            model = keras.models.load_model(work.last)
        else:
            model = build("tcresnet", val_x, len(LABELS), config.train)
            compile_model(model, 0.003, steps, epochs * steps)
        return fit(model, data, steps, epochs, work, val_x, val.targets, LABELS, 10, state)

    run(1, new_state())  # then the process "dies"
    state = work.state()
    assert state["epoch"] == 1
    state = run(2, state)
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    last = keras.models.load_model(work.last)
    assert int(last.optimizer.iterations.numpy()) == 2 * 3  # 3 steps an epoch: it carried on


@pytest.fixture(scope="module")
def trained_bundle(tiny_dataset, tmp_path_factory):
    """A bundle trained here by `kws train` on the recipe of the committed test bundle."""
    root = tmp_path_factory.mktemp("trained")
    out = root / "bundle"
    run_kws("train", "--config", str(TINY_CONFIG), "--data", str(tiny_dataset), "--out", str(out),
            "--workdir", str(root / "work"), "--threads", "1", timeout=900)
    return out


def test_bundle_loads_and_litert_matches_keras(trained_bundle, tiny_dataset, config):
    import keras

    from kws_train.pipeline import features

    tiny_bundle = trained_bundle
    bundle = load_bundle(tiny_bundle, config)
    assert bundle.labels == LABELS
    meta = bundle.metadata
    assert meta["metrics"]["validation"]["accuracy"] > 0.9
    assert meta["data"]["training"]["per_class"]["yes"] == 16
    assert {"curves.png", "confusion.png", "metrics.json", "model.keras"} <= \
        {p.name for p in tiny_bundle.iterdir()}
    val = evaluation_audio(tiny_dataset, "validation", config)
    x = features(bundle.frontend(), val.waves)
    keras_out = keras.models.load_model(tiny_bundle / "model.keras").predict(x, verbose=0)
    assert np.abs(bundle.classifier().predict(x) - keras_out).max() < 1e-3
    int8 = bundle.classifier(int8=True).predict(x)
    assert (int8.argmax(1) == keras_out.argmax(1)).mean() > 0.8


def test_end_to_end_train_then_replay(trained_bundle, spoken):
    """The path a user takes: `kws train`, then `kws replay` through the bundle it wrote."""
    _, labels, wav = spoken
    result = run_kws("replay", str(wav), "--model", str(trained_bundle), "--json",
                     "--config", str(TINY_CONFIG))
    found = [json.loads(line)["word"] for line in result.stdout.splitlines()]
    assert found and set(found) <= set(TINY_WORDS)
    assert sum(word in found for word, _, _ in labels) >= len(set(w for w, _, _ in labels)) // 2


def test_kws_train_resume_carries_on_after_the_last_epoch(trained_bundle, tiny_dataset, tmp_path):
    # The README's `--resume`, from the command line: the finished run's workdir and one epoch
    # more; it goes on from there (not from scratch) and the bundle counts every epoch once.
    ran = load_bundle(trained_bundle).metadata["training"]["epochs_run"]
    out = tmp_path / "more"
    result = run_kws("train", "--config", str(TINY_CONFIG), "--data", str(tiny_dataset), "--out", str(out),
                     "--workdir", str(trained_bundle.parent / "work"), "--threads", "1",
                     "--epochs", str(ran + 1), "--resume", timeout=900)
    assert f"resuming after epoch {ran} " in result.stdout, result.stdout
    assert f"epoch {ran + 1}:" in result.stdout and "epoch 1:" not in result.stdout
    training = load_bundle(out).metadata["training"]
    assert training["epochs_run"] == ran + 1
    assert [h["epoch"] for h in training["history"]] == list(range(1, ran + 2))
