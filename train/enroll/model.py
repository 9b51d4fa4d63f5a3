"""The enrolled model: the shipped model's trained layers as a frozen backbone, a new head
trained on its embeddings, then exported as a bundle like any other.

The backbone is each ensemble member's layers up to its pooled embedding, cut at the input of
its last block (``backbone``): activations there are computed once per example (``embed``), so
training the head and fine-tuning the last blocks never run the early layers again. Keras and
TensorFlow are imported inside the functions: importing ``kws_train.enroll`` must not load
them (``kws enroll`` checks its inputs first).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.bundle import Bundle, load_bundle
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.posterior import smoothing_ms
from kws_train.enroll.job import Job
from kws_train.enroll.negatives import Examples


def backbone(model):
    """``(prefix, suffix)`` per ensemble member: ``prefix`` maps features to the input of the
    member's last block (its last stride-2 convolutions), ``suffix`` that block up to the
    pooled embedding (the input of its ``posteriors`` Dense layer). Both frozen; the suffix
    may be fine-tuned (``Budget.tune_epochs``)."""
    import keras

    found = []

    def visit(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                visit(layer)
            elif layer.name == "posteriors" and isinstance(layer, keras.layers.Dense):
                strided = [c for c in m.layers if isinstance(c, keras.layers.Conv1D) and c.strides[0] > 1]
                i = len(found)
                if strided:
                    cut = strided[-1].input
                    pair = (keras.Model(m.inputs, cut, name=f"prefix{i}"),
                            keras.Model(cut, layer.input, name=f"suffix{i}"))
                else:  # not a TC-ResNet: the whole body is the prefix
                    pair = (keras.Model(m.inputs, layer.input, name=f"prefix{i}"), None)
                found.append(pair)

    visit(model)
    if not found:
        raise KwsError("the base model has no Dense layer named 'posteriors' to start from")
    for prefix, suffix in found:
        prefix.trainable = False
        if suffix is not None:
            suffix.trainable = False
    return found


@dataclass
class Enrolled:
    """The Keras models of an enrollment; all share the same layers (weights)."""

    full: object      # features -> posteriors: what is exported
    prefix: object    # features -> activations at the last blocks' input (a list)
    suffix: object    # those activations -> embedding
    head: object      # embedding -> posteriors
    tune: object      # activations -> posteriors (fine-tuning the last blocks and the head)
    pairs: list       # the backbone's (prefix, suffix) per member

    @property
    def tunable(self) -> bool:
        """Every member has a last block to fine-tune (TC-ResNets)."""
        return all(suffix is not None for _, suffix in self.pairs)


def build_model(pairs, frames: int, dim: int, classes: int, hidden: int = 128) -> Enrolled:
    """Backbone + a new head (Dense ``hidden`` ReLU, dropout, Dense softmax ``posteriors``)."""
    import keras

    hidden_layer = keras.layers.Dense(hidden, activation="relu", name="head_hidden")
    drop = keras.layers.Dropout(0.3, name="head_dropout")
    out_layer = keras.layers.Dense(classes, activation="softmax", name="posteriors")
    concat = keras.layers.Concatenate(name="embedding") if len(pairs) > 1 else None

    def tail(acts):
        embs = [suffix(a, training=False) if suffix is not None else a
                for a, (_, suffix) in zip(acts, pairs)]
        return concat(embs) if concat is not None else embs[0]

    inputs = keras.Input(shape=(frames, dim), name="features")
    acts = [prefix(inputs, training=False) for prefix, _ in pairs]
    emb = tail(acts)
    full = keras.Model(inputs, out_layer(drop(hidden_layer(emb))), name="enrolled")
    prefix_model = keras.Model(inputs, acts, name="prefixes")
    act_inputs = [keras.Input(shape=a.shape[1:], name=f"activations{i}") for i, a in enumerate(acts)]
    act_emb = tail(act_inputs)
    suffix_model = keras.Model(act_inputs, act_emb, name="suffixes")
    emb_in = keras.Input(shape=(emb.shape[-1],), name="embedding_in")
    head = keras.Model(emb_in, out_layer(drop(hidden_layer(emb_in))), name="head")
    tune = keras.Model(act_inputs, out_layer(drop(hidden_layer(act_emb))), name="tune")
    return Enrolled(full, prefix_model, suffix_model, head, tune, pairs)


@dataclass
class Base:
    """The base bundle and the enrolled model built on it."""

    bundle: Bundle
    frontend: FrontEnd
    model: Enrolled


def load_base(job: Job) -> Base:
    """The base bundle's model cut into a backbone, with a new head for ``job.labels``."""
    return open_base(job.base or job.config.model_path, job.config, len(job.labels), job.seed, job.threads)


def open_base(path, config, classes: int, seed: int = 0, threads: int = 0) -> Base:
    """The bundle at ``path`` cut into a backbone, with a new head of ``classes`` outputs;
    TensorFlow seeded and deterministic, on ``threads`` threads (0: all cores)."""
    import keras
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran in this process: its thread pools stay as made
            pass
    # The same seed gives the same bundle: seeded, and TensorFlow's ops (multi-threaded
    # reductions) made deterministic; without that a threshold moved between runs (0.88, 0.91).
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    bundle = load_bundle(path, config)
    if not (bundle.path / "model.keras").is_file():
        raise KwsError(f"{bundle.path}: the base bundle has no model.keras to start from")
    frontend = bundle.frontend()
    base_model = keras.models.load_model(bundle.path / "model.keras", compile=False)
    frames = frontend.num_frames(config.audio.clip_samples)
    model = build_model(backbone(base_model), frames, frontend.dim, classes)
    return Base(bundle, frontend, model)


def fingerprint(base: Base, sample_rate: int) -> str:
    """What the activations at the last blocks' input depend on, hashed: the weights before
    them, the front end and the window. Two bases with one fingerprint give every clip the same
    activations, so an enrolment bank (``kws_train.enroll.bank``) computed with one serves the
    other; any retraining changes it."""
    digest = hashlib.sha256()
    for prefix, _ in base.model.pairs:
        for weight in prefix.weights:
            digest.update(np.asarray(weight, np.float32).tobytes())
    frontend = base.frontend
    digest.update(np.asarray(frontend.basis, np.float64).tobytes())
    digest.update(f"{frontend.params.model_dump_json()} {sample_rate} {base.model.full.input_shape}".encode())
    return digest.hexdigest()[:16]


@dataclass
class Features:
    """Examples through the frozen backbone."""

    acts: list[np.ndarray]  # per member, at its last block's input: what fine-tuning trains on
    labels: np.ndarray
    embeddings: np.ndarray  # pooled: what the head alone trains on

    def join(self, other: "Features") -> "Features":
        """Both sets of examples."""
        return Features([np.concatenate([a, b]) for a, b in zip(self.acts, other.acts)],
                        np.concatenate([self.labels, other.labels]),
                        np.concatenate([self.embeddings, other.embeddings]))


def embed(base: Base, examples: Examples, augmenter=None, rng=None, bar=None) -> Features:
    """``examples`` through the backbone; with an ``augmenter``, half of them SpecAugmented."""
    acts = activations(examples.waves, base.frontend, base.model.prefix, augmenter, rng, bar)
    return features(base, acts, examples.labels)


def features(base: Base, acts: list[np.ndarray], labels) -> Features:
    """Activations at the last blocks' input (``acts``, per member) with their pooled embeddings,
    through the last blocks as they are now."""
    embeddings = base.model.suffix.predict(acts, batch_size=512, verbose=0)
    return Features(acts, np.asarray(labels, np.int32), embeddings)


def activations(waves, frontend: FrontEnd, prefix, augmenter=None, rng=None, bar=None) -> list[np.ndarray]:
    """The prefix model's outputs (one array per member) for ``waves``, in batches; with an
    ``augmenter``, half of them SpecAugmented."""
    frames = frontend.num_frames(len(waves[0]))
    out: list[list[np.ndarray]] = []
    batch = 512
    for start in range(0, len(waves), batch):
        chunk = waves[start:start + batch]
        x = np.empty((len(chunk), frames, frontend.dim), np.float32)
        for i, w in enumerate(chunk):
            f = frontend.compute(w)
            x[i] = augmenter.spectrogram(f, rng) if augmenter is not None and rng.random() < 0.5 else f
        got = prefix.predict(x, batch_size=batch, verbose=0)
        out.append(got if isinstance(got, list) else [got])
        if bar is not None:
            bar.advance((start + len(chunk)) / len(waves))
    return [np.concatenate([o[k] for o in out]).astype(np.float32) for k in range(len(out[0]))]


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Each of ``classes`` labels weighted inversely to its number of examples in ``labels``."""
    counts = np.bincount(labels, minlength=classes)
    return {i: float(len(labels) / (classes * max(1, c))) for i, c in enumerate(counts)}


def train_head(model: Enrolled, train: Features, val: Features, weights: dict, epochs: int, bar) -> list[float]:
    """The head alone on the fixed embeddings; the loss of each epoch."""
    import keras

    model.head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    history = model.head.fit(train.embeddings, train.labels, batch_size=128, epochs=epochs, verbose=0,
                             class_weight=weights, validation_data=(val.embeddings, val.labels),
                             callbacks=[_ticks(bar, epochs)], shuffle=True)
    return history.history["loss"]


def fine_tune(model: Enrolled, train: Features, val: Features, weights: dict, epochs: int,
              rate: float, bar) -> list[float]:
    """Then the last block of every member too, slowly, with the head that now fits it; the loss
    of each epoch. The blocks are frozen again after."""
    import keras

    for _, suffix in model.pairs:
        suffix.trainable = True
    model.tune.compile(optimizer=keras.optimizers.Adam(rate),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.tune.fit(train.acts, train.labels, batch_size=64, epochs=epochs, verbose=0,
                             class_weight=weights, validation_data=(val.acts, val.labels),
                             callbacks=[_ticks(bar, epochs)], shuffle=True)
    for _, suffix in model.pairs:
        suffix.trainable = False
    return history.history["loss"]


def _ticks(bar, epochs: int):
    """A Keras callback moving ``bar`` on at each epoch's end."""
    import keras

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.advance((epoch + 1) / epochs)

    return Tick()


def validation_recall(model: Enrolled, val: Features, labels: list[str]) -> dict[str, float]:
    """label -> the share of its validation clips the trained model calls by it."""
    pred = model.tune.predict(val.acts, batch_size=512, verbose=0).argmax(1)
    return {labels[c]: float((pred[val.labels == c] == c).mean()) for c in np.unique(val.labels)}


def export_bundle(staging: Path, job: Job, base: Base, calibration_waves: list, check_waves: list,
                  training: dict, enroll: dict, bar) -> None:
    """The model into ``staging`` (Keras, LiteRT float and int8, front end, metadata with
    ``training`` and ``enroll``); the LiteRT-against-Keras difference is added to ``training``."""
    import keras

    from kws_train import export

    full, frontend = base.model.full, base.frontend
    with tempfile.TemporaryDirectory(prefix="kws-enroll-") as tmpname:
        calibration = np.stack([frontend.compute(w) for w in calibration_waves]).astype(np.float32)
        bar.advance(0.3)
        check = np.stack([frontend.compute(w) for w in check_waves]).astype(np.float32)
        litert, checks = export.litert_models(full, Path(tmpname), check, calibration, job.config.hop_frames)
        training["litert_vs_keras_max_diff"] = checks["litert_vs_keras_max_diff"]
        bar.advance(0.9)
        # The base model's smoothing (500 ms for the shipped one; the config's where it sets
        # one): thresholds are chosen with it, and on real people it heard up to 9 points more at
        # equal false alarms than the 250-ms fallback, in 7 of 9 comparisons (studies/enroll_study.py).
        export.fill_bundle(staging, keras.Model(full.inputs, full.outputs), litert, frontend, job.labels,
                           job.config.audio.clip_seconds, {}, [], arch=training["arch"],
                           training=training, enroll=enroll, stream=checks["stream"],
                           smoothing_ms=smoothing_ms(job.config, base.bundle.smoothing_ms))
