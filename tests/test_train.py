"""Training: pipeline parity with the front end, balanced epochs, resume, the exported bundle."""

import json

import keras
import numpy as np
import pytest
from conftest import TINY_WORDS

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.features import FrontEnd
from train.augment import Augmenter
from train.dataset import labels_for, list_clips, load_audio
from train.evaluate import evaluation_audio
from train.fit import Workdir, compile_model, fit, new_state
from train.models import ARCHITECTURES, build
from train.pipeline import CLIP, PARTIAL, SILENCE_CLIP, BatchMaker, epoch_plan, features, training_dataset

pytestmark = pytest.mark.slow
LABELS = labels_for(TINY_WORDS)


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
    frontend = FrontEnd(config.features, 16000)
    expected = np.stack([frontend.compute(w) for w in clips.waves[:8]])
    assert np.array_equal(features(frontend, clips.waves[:8]), expected)
    maker = BatchMaker(clips.waves, clips.targets, frontend,
                       Augmenter(no_augmentation(config), [], 16000), 0, 1)
    x, y = maker(np.stack([np.arange(8), np.full(8, CLIP)], 1), np.array([0, 0, 0]))
    assert np.array_equal(x, expected) and np.array_equal(y, clips.targets[:8])


def test_balanced_epochs_and_repeatable_batches(clips, config):
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
    sample = np.random.default_rng(0).normal(-50, 10, (16, 98, 40)).astype(np.float32)
    for arch in sorted(ARCHITECTURES):
        model = build(arch, sample, len(LABELS), config.train)
        out = model.predict(sample[:2], verbose=0)
        assert out.shape == (2, len(LABELS)) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_resume_continues_after_finished_epochs(clips, tiny_dataset, config, tmp_path):
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


def test_bundle_loads_and_litert_matches_keras(tiny_bundle, tiny_dataset, config):
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


def test_eval_json_on_dataset_and_archive(tiny_bundle, tiny_dataset, tmp_path):
    from conftest import run_kws

    result = run_kws("eval", "--data", str(tiny_dataset), "--model", str(tiny_bundle),
                     "--report", str(tmp_path / "report"), "--json")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["accuracy"] > 0.8 and set(metrics["per_class"]) == set(LABELS)
    assert len(metrics["confusion"]) == len(LABELS) and "balanced accuracy" in result.stdout
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 0
    # The same test clips, laid out as the official test-set archive.
    archive = tmp_path / "archive"
    for rel in (tiny_dataset / "testing_list.txt").read_text().split():
        word, name = rel.split("/")
        folder = word if word in TINY_WORDS else "_unknown_"
        (archive / folder).mkdir(parents=True, exist_ok=True)
        target = f"{word}_{name}.wav" if folder == "_unknown_" else name
        (archive / folder / target).write_bytes((tiny_dataset / rel).read_bytes())
    result = run_kws("eval", "--data", str(archive), "--model", str(tiny_bundle),
                     "--report", str(tmp_path / "report2"), "--json")
    archived = json.loads(result.stdout.strip().splitlines()[-1])
    assert archived["per_class"]["_unknown_"]["support"] == 2 * 4  # every clip, no 10% cut
    assert archived["per_class"]["yes"]["support"] == metrics["per_class"]["yes"]["support"]


def test_bad_input_is_one_line_error(tmp_path):
    from conftest import run_kws

    result = run_kws("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"),
                     check=False)
    assert result.returncode == 2 and "no such dataset directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
