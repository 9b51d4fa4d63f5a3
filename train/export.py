"""Keras model -> LiteRT models (float and int8), checked against Keras, and the bundle.

Conversion goes through a SavedModel written by ``keras.export.ExportArchive`` and
``TFLiteConverter.from_saved_model``: converting concrete functions directly produced models
that ran but output NaN (TRAINING_NOTES). Every converted model is run in LiteRT
(``kws.inference.Classifier``, the runtime's own path) and compared with Keras before it is
written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.bundle import STREAM_MODEL, bundle_writer, write_metadata
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.inference import Classifier
from kws.quiet import quiet_c_stderr
from kws_train.fit import is_chief, predict, task_name

# Largest |LiteRT - Keras| posterior difference accepted for the float model.
FLOAT_TOLERANCE = 1e-3


def logits_model(model: keras.Model) -> keras.Model:
    """The twin of ``model`` without its final softmax (the layer named ``posteriors``).

    Exported models output logits and the runtime applies the softmax in float
    (``kws.inference.Classifier``): in an int8 model the softmax output is quantised in steps
    of 1/256, and scores near 1, where thresholds that keep speech quiet live, saturate.
    """
    head = model.get_layer("posteriors")
    if isinstance(head, keras.layers.Dense):
        twin = keras.layers.Dense(head.units, name="logits")
        outputs = twin(head.input)
        twin.set_weights(head.get_weights())
    else:  # an Activation("softmax"), as ``kws_train.ensemble`` ends
        outputs = head.input
    return keras.Model(model.inputs, outputs, name=f"{model.name}_logits")


def to_tflite(model: keras.Model, representative: np.ndarray | None = None) -> bytes | None:
    """Convert to a LiteRT flatbuffer taking one ``(1, frames, dim)`` window, giving logits
    (``logits_model``).

    With ``representative`` features the weights and activations are quantised to int8
    (inputs and outputs stay float, so the runtime feeds raw features either way). That
    conversion runs in a child process: on an LSTM's loop it killed the whole process, so a
    failure there returns ``None`` instead of losing the run.
    """
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32, name="features")
    model = logits_model(model)
    return convert_function(model, lambda x: model(x, training=False), [spec], representative)


def convert_function(model: keras.Model, fn, specs: list, representative: np.ndarray | None = None) -> bytes | None:
    """LiteRT flatbuffer of ``fn`` (with ``model``'s weights) over inputs ``specs``, through a
    SavedModel; int8 in a child process when ``representative`` inputs are given (``None``
    if that conversion fails)."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved"
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name="serve", fn=fn, input_signature=specs)
        archive.write_out(str(saved), verbose=False)
        if representative is None:
            return convert(saved)
        calibration, out = Path(tmp) / "calibration.npy", Path(tmp) / "int8.tflite"
        np.save(calibration, representative)
        done = subprocess.run([sys.executable, "-m", "kws_train.export", str(saved), str(calibration),
                               str(out)], capture_output=True)
        return out.read_bytes() if done.returncode == 0 and out.is_file() else None


def convert(saved: Path, representative: np.ndarray | None = None) -> bytes:
    """LiteRT flatbuffer of a SavedModel; int8 when ``representative`` windows are given."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
    return converter.convert()


def litert_posteriors(path: Path, windows: np.ndarray) -> np.ndarray:
    """Posteriors of an exported (logits) model, as the runtime computes them."""
    with quiet_c_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate"
        classifier = Classifier(path, softmax=True)
    return classifier.predict(windows)


def check_against_keras(model: keras.Model, path: Path, windows: np.ndarray,
                        tolerance: float = FLOAT_TOLERANCE) -> float:
    """Largest posterior difference between LiteRT and Keras; an error beyond ``tolerance``."""
    expected = predict(model, windows, batch_size=256)
    got = litert_posteriors(path, windows)
    diff = float(np.max(np.abs(got - expected))) if np.isfinite(got).all() else float("inf")
    if diff > tolerance:
        raise KwsError(f"{path.name}: LiteRT posteriors differ from Keras by {diff:.3g} "
                       f"(tolerance {tolerance}); not exporting a broken model")
    return diff


def litert_models(model: keras.Model, work: Path, check: np.ndarray, calibration: np.ndarray,
                  step: int) -> tuple[dict[str, Path], dict]:
    """Write the bundle's LiteRT models into ``work``; return ``{bundle name: path}`` and what
    the checks measured (``litert_vs_keras_max_diff``, and ``stream`` for the metadata).

    The float model is checked against Keras on the ``check`` windows; the int8 one is left
    out if it does not convert (``to_tflite``); the streaming twin for hops of ``step`` frames
    (``kws_train.stream``) is left out if the model does not stream, and checked on the
    ``check`` windows' frames played in a row.
    """
    from kws_train import stream

    float_path = work / "model.tflite"
    float_path.write_bytes(to_tflite(model))
    litert = {"model.tflite": float_path}
    info = {"litert_vs_keras_max_diff": check_against_keras(model, float_path, check)}
    int8 = to_tflite(model, calibration)
    if int8 is None:
        print("int8 conversion failed: the bundle has the float model only", flush=True)
    else:
        (work / "model_int8.tflite").write_bytes(int8)
        litert["model_int8.tflite"] = work / "model_int8.tflite"
    stream_path = work / STREAM_MODEL
    info["stream"] = stream.export(model, step, stream_path, check.reshape(-1, check.shape[-1]),
                                   FLOAT_TOLERANCE)
    if info["stream"] is not None:
        litert[STREAM_MODEL] = stream_path
    return litert, info


def latency_ms(path: Path, window: np.ndarray, runs: int = 200) -> float:
    """Median LiteRT time of one window on one thread, in milliseconds."""
    classifier = Classifier(path, num_threads=1)
    for _ in range(10):
        classifier(window)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier(window)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 4)


def write_bundle(out: str | Path, model: keras.Model, litert: dict[str, Path], frontend: FrontEnd,
                 labels: list[str], clip_seconds: float, thresholds: dict[str, float],
                 reports: list[Path], **metadata) -> Path:
    """Write the bundle atomically: LiteRT models, the Keras model, metadata and reports.

    In a cluster (``TF_CONFIG``) only the chief writes ``out``; the other tasks write theirs
    to a temporary directory, removed at once, so exactly one bundle comes out of a run.
    """
    if not is_chief():
        with tempfile.TemporaryDirectory(prefix=f"kws-{task_name()}-") as scratch:
            _write_bundle(Path(scratch) / Path(out).name, model, litert, frontend, labels, clip_seconds,
                          thresholds, reports, **metadata)
        print(f"{task_name()}: not the chief, the bundle is written by the chief only", flush=True)
        return Path(out)
    return _write_bundle(out, model, litert, frontend, labels, clip_seconds, thresholds, reports, **metadata)


def _write_bundle(out: str | Path, *args, **metadata) -> Path:
    with bundle_writer(out) as staging:
        fill_bundle(staging, *args, **metadata)
    return Path(out)


def fill_bundle(directory: Path, model: keras.Model, litert: dict[str, Path], frontend: FrontEnd,
                labels: list[str], clip_seconds: float, thresholds: dict[str, float],
                reports: list[Path], **metadata) -> None:
    """Write the bundle's files into ``directory`` (a ``bundle_writer`` staging directory, for
    a writer with more to add before the bundle replaces the old one)."""
    for name, path in litert.items():
        shutil.copyfile(path, directory / name)
    model.save(directory / "model.keras")
    for report in reports:
        shutil.copyfile(report, directory / report.name)
    write_metadata(directory, labels=labels, sample_rate=frontend.sample_rate, outputs="logits",
                   clip_seconds=clip_seconds, features=frontend.params, basis=frontend.basis,
                   thresholds=thresholds, **metadata)


if __name__ == "__main__":
    # The child of ``to_tflite``: SAVED_MODEL CALIBRATION.npy OUT.tflite
    Path(sys.argv[3]).write_bytes(convert(Path(sys.argv[1]), np.load(sys.argv[2])))
