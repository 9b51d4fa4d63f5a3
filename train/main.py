"""``kws train`` end to end: data -> model -> fit -> LiteRT export, scores and reports -> bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.config import Config
from kws.errors import KwsError
from kws.features import FrontEnd
from train import export
from train.augment import Augmenter, silence_clips
from train.dataset import SILENCE, UNKNOWN, labels_for, list_clips, load_audio, load_noise
from train.evaluate import EvalData, evaluation_audio
from train.fit import Workdir, compile_model, fit, new_state, strategy
from train.metrics import score, table
from train.models import build
from train.pipeline import BatchMaker, features, training_dataset
from train.reports import plot_confusion, plot_curves

NORMALISER_CLIPS = 2000   # training clips the Normalization layer is adapted on
CALIBRATION_WINDOWS = 300  # representative windows for int8 quantisation


def set_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools (call before any TensorFlow work; 0 keeps the default)."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _training_audio(config: Config, data: Path):
    clips = list_clips(data, config.words, "training",
                       unknown_fraction=config.train.unknown_fraction, seed=config.train.seed)
    if not clips.paths:
        raise KwsError(f"{data}: no training clips found (expected <word>/<speaker>_nohash_<n>.wav folders)")
    audio = load_audio(clips, config.audio.sample_rate, config.audio.clip_samples, "training clips")
    if not len(audio.targets):
        raise KwsError(f"{data}: none of the {len(clips.paths)} training clips could be read")
    counts = np.bincount(audio.targets, minlength=len(clips.labels))
    summary = {"clips": int(len(audio.targets)),
               "per_class": {label: int(n) for label, n in zip(clips.labels, counts)},
               "skipped": len(audio.skipped), "skipped_examples": audio.skipped[:5],
               "notes": clips.notes}
    return audio, summary


def _say(summary: dict, what: str) -> None:
    for note in summary["notes"]:
        print(f"{what}: {note}", flush=True)
    if summary["skipped"]:
        print(f"{what}: skipped {summary['skipped']} unreadable clips, e.g. "
              f"{summary['skipped_examples'][0]}", flush=True)


def _litert_scores(path: Path, x: np.ndarray, data: EvalData) -> dict:
    return score(data.targets, export.litert_posteriors(path, x).argmax(1), data.labels)


def train_bundle(config: Config, data: str | Path, out: str | Path, workdir: str | Path,
                 resume: bool = False) -> dict:
    """Train ``config.train.arch`` on ``data`` and write the bundle ``out``; return its metrics."""
    tc, data, started = config.train, Path(data), time.time()
    keras.utils.set_random_seed(tc.seed)
    sr, length = config.audio.sample_rate, config.audio.clip_samples
    labels = labels_for(config.words)
    audio, train_summary = _training_audio(config, data)
    _say(train_summary, "training")
    noises, bad_noise = load_noise(data, sr)
    augmenter = Augmenter(tc.augment, noises, sr)
    val = evaluation_audio(data, "validation", config, seed=tc.seed)
    _say(val.summary, "validation")
    frontend = FrontEnd(config.features, sr)
    val_x = features(frontend, val.waves)

    rng = np.random.default_rng(tc.seed)
    pick = np.sort(rng.choice(len(audio.waves), min(NORMALISER_CLIPS, len(audio.waves)), replace=False))
    sample_x = np.concatenate([features(frontend, audio.waves[pick]),
                               features(frontend, silence_clips(augmenter, len(pick) // 10, length, tc.seed))])

    work = Workdir(workdir)
    state = work.state() if resume else None
    if state is None:
        if resume:
            print(f"{work.path}: nothing to resume, starting afresh", flush=True)
        work.reset()
        state = new_state()
    elif state["epoch"]:
        print(f"resuming after epoch {state['epoch']} (best {state['best']:.4f} at epoch "
              f"{state['best_epoch']})", flush=True)
    maker = BatchMaker(audio.waves, audio.targets, frontend, augmenter, labels.index(SILENCE),
                       labels.index(UNKNOWN))
    partials = round(tc.augment.partial_fraction * tc.clips_per_class)
    batches, steps = training_dataset(maker, len(labels), tc.clips_per_class, partials,
                                      tc.batch_size, tc.seed, state["epoch"], tc.epochs)
    with strategy().scope():
        if state["epoch"]:
            model = keras.models.load_model(work.last)
        else:
            model = build(tc.arch, sample_x, len(labels), tc)
            compile_model(model, tc.learning_rate, tc.warmup_epochs * steps, tc.epochs * steps)
    print(f"{tc.arch}: {model.count_params():,} parameters, {steps} steps per epoch", flush=True)
    state = fit(model, batches, steps, tc.epochs, work, val_x, val.targets, labels, tc.patience, state)
    train_seconds = time.time() - started

    float_path, int8_path = work.path / "model.tflite", work.path / "model_int8.tflite"
    float_path.write_bytes(export.to_tflite(model))
    max_diff = export.check_against_keras(model, float_path, val_x[:64])
    calibration = sample_x[rng.choice(len(sample_x), min(CALIBRATION_WINDOWS, len(sample_x)), replace=False)]
    int8_path.write_bytes(export.to_tflite(model, calibration))
    metrics = {"validation": _litert_scores(float_path, val_x, val),
               "validation_int8": _litert_scores(int8_path, val_x, val)}
    test = evaluation_audio(data, "testing", config, seed=tc.seed)
    if (test.targets > labels.index(SILENCE)).any():
        metrics["testing"] = _litert_scores(float_path, features(frontend, test.waves), test)
    metrics["int8_cost"] = {key: metrics["validation"][key] - metrics["validation_int8"][key]
                            for key in ("accuracy", "balanced_accuracy")}
    metrics["litert_vs_keras_max_diff"] = max_diff
    metrics["latency_ms"] = {"float": export.latency_ms(float_path, val_x[0]),
                             "int8": export.latency_ms(int8_path, val_x[0])}

    shown = "testing" if "testing" in metrics else "validation"
    print(f"\n{shown} (LiteRT float):\n{table(metrics[shown])}", flush=True)
    reports = [work.path / "curves.png", work.path / "confusion.png", work.path / "metrics.json"]
    plot_curves(state["history"], reports[0])
    plot_confusion(metrics[shown], reports[1], f"{tc.arch}, {shown} split: accuracy "
                   f"{100 * metrics[shown]['accuracy']:.1f}%, balanced "
                   f"{100 * metrics[shown]['balanced_accuracy']:.1f}%")
    reports[2].write_text(json.dumps(metrics, indent=1) + "\n")
    summary = {"root": str(data.resolve()), "training": train_summary, "validation": val.summary,
               "testing": test.summary, "noise_files": len(noises), "noise_skipped": len(bad_noise)}
    training = {"arch": tc.arch, "parameters": model.count_params(), "epochs_run": state["epoch"],
                "best_epoch": state["best_epoch"], "seconds": round(train_seconds),
                "config": tc.model_dump(mode="json"), "history": state["history"]}
    export.write_bundle(out, keras.Model(model.inputs, model.outputs),  # without optimizer state
                        {"model.tflite": float_path, "model_int8.tflite": int8_path}, frontend,
                        labels, config.audio.clip_seconds, {}, reports, arch=tc.arch,
                        data=summary, training=training, metrics=metrics)
    print(f"bundle written to {out}", flush=True)
    return metrics
