"""Distillation (``train.teacher``): soft targets from a teacher (a bundle, or a foreign LiteRT or
TensorFlow 1 model on raw audio), their cache, and a training run that learns from them (needs
TensorFlow)."""

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
    taught = (kinds == CLIP) & (own.argmax(1) == labels)
    assert taught.any() and y.shape == own.shape
    assert np.allclose(y[taught], 0.25 * own[taught] + 0.75 * onehot[taught], atol=1e-6)
    # Made-up negatives keep their label, and so do clips where the teacher's top class is wrong.
    assert np.array_equal(y[~taught], onehot[~taught])
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


def _foreign_labels(folder: Path, labels: list[str]) -> list[str]:
    """A teacher's own label order, unlike ours (reversed), written beside its model."""
    theirs = labels[::-1]
    (folder / "labels.txt").write_text("\n".join(theirs) + "\n")
    return theirs


def _batch(n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, 16000))).astype(np.float32)


def test_a_litert_teacher_hears_the_raw_waveform_in_our_label_order(tmp_path):
    import keras
    import tensorflow as tf

    from kws_train.teachers import load_teacher

    labels = labels_for(TINY_WORDS)
    theirs = _foreign_labels(tmp_path, labels)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16000,), batch_size=1)
    frames = keras.layers.Reshape((100, 160))(inputs)
    logits = keras.layers.Dense(len(labels))(keras.layers.GlobalAveragePooling1D()(
        keras.layers.Dense(8, activation="relu")(frames)))
    model = keras.Model(inputs, logits)
    path = tmp_path / "teacher.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    waves = _batch()
    want = np.concatenate([model(w[None]).numpy() for w in waves])  # logits in their order
    teacher = load_teacher(path, labels, temperature=2.0)
    got = teacher(waves, None)
    order = [theirs.index(label) for label in labels]
    soft = np.exp(want[:, order] / 2.0)
    assert np.allclose(got, soft / soft.sum(1, keepdims=True), atol=1e-4)
    with pytest.raises(KwsError, match="labels"):
        load_teacher(path, labels_for(["yes", "no"]))


def test_a_frozen_graph_teacher_is_fed_wav_bytes(tmp_path):
    import tensorflow as tf

    from kws_train.teachers import load_teacher

    labels = labels_for(TINY_WORDS)
    theirs = _foreign_labels(tmp_path, labels)
    weights = np.random.default_rng(1).standard_normal((1, len(labels))).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():  # the "Hello Edge" interface: WAV bytes in, labels_softmax out
        wav = tf.compat.v1.placeholder(tf.string, [], name="wav_data")
        audio = tf.audio.decode_wav(wav, desired_channels=1).audio
        level = tf.reshape(tf.reduce_mean(tf.abs(audio)), [1, 1])
        tf.nn.softmax(tf.matmul(level * 10.0, weights), name="labels_softmax")
        frozen = graph.as_graph_def()
    path = tmp_path / "teacher.pb"
    path.write_bytes(frozen.SerializeToString())
    waves = _batch()
    got = load_teacher(path, labels)(waves, None)
    level = np.abs(np.round(np.clip(waves, -1, 1) * 32767) / 32768).mean(1, keepdims=True)
    want = np.exp(level * 10.0 * weights)
    want = want / want.sum(1, keepdims=True)
    assert np.allclose(got, want[:, [theirs.index(label) for label in labels]], atol=1e-4)


def test_cached_targets_are_read_back_instead_of_run_again(tiny_bundle, tmp_path):
    from kws_train.pipeline import Teacher
    from kws_train.teachers import TargetCache

    labels = labels_for(TINY_WORDS)
    teacher = Teacher(str(tiny_bundle), labels, 1.0, cache=TargetCache(tmp_path, "key"))
    calls = []
    run = teacher.model.__call__
    teacher.model = lambda waves, x: calls.append(len(x)) or run(waves, x)
    x = np.random.default_rng(0).standard_normal((4, 98, 40)).astype(np.float32) * 10 - 40
    y, taught, seed = np.array([2, 3, 1, 4]), np.array([True, True, False, True]), np.array([7, 1, 2])
    waves = _batch(4)  # a bundle teacher reads the features; the waveforms ride along
    first = teacher(waves, x, y, taught, seed)
    again = teacher(waves, x, y, taught, seed)
    assert calls == [3] and np.array_equal(first, again)
    assert np.array_equal(first[2], np.eye(len(labels))[1])  # not taught: its label
    soft = run(waves[taught], x[taught])
    right = soft.argmax(1) == y[taught]
    assert not right.all()  # random features: the teacher is wrong on some rows, and the label wins there
    onehot = np.eye(len(labels))[y[taught]]
    assert np.allclose(first[taught], np.where(right[:, None], soft, onehot), atol=1e-6)
    other = Teacher(str(tiny_bundle), labels, 1.0, cache=TargetCache(tmp_path, "another key"))
    assert other.cache.get(seed) is None  # another key never reads these
