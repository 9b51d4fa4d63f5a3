"""``kws train`` end to end: data -> model -> fit -> LiteRT export, scores and reports -> bundle."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.bundle import load_bundle
from kws.config import Config
from kws.errors import KwsError
from kws.writes import to_json
from kws.features import FrontEnd
from kws.units import ms_to_samples
from kws_train import export
from kws_train.augment import Augmenter, mel_centres
from kws.data.noise import silence_clips
from kws.data.speech_commands import (SILENCE, UNKNOWN, Audio, labels_for, list_clips, load_audio,
                           load_audio_files, load_noise, require_classes)
from kws.eval.clips import EvalData, evaluation_audio, scores
from kws_train.fit import Workdir, cluster, compile_model, fit, is_chief, new_state, strategy
from kws.eval.metrics import table
from kws_train.models import build
from kws.data.negatives import negative_files
from kws_train.pipeline import BatchMaker, NegativeSource, Teacher, features, training_dataset
from kws_train.teachers import TargetCache, teacher_identity
from kws.eval.reports import plot_confusion, plot_curves

NORMALISER_CLIPS = 2000   # training clips the Normalization layer is adapted on
CALIBRATION_WINDOWS = 300  # representative windows for int8 quantisation


def set_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools (call before any TensorFlow work; 0 keeps the default).

    In a cluster (``TF_CONFIG``) TensorFlow's runtime may already be running, and then its
    pools cannot change: the threads come from ``TF_NUM_INTRAOP_THREADS`` and
    ``TF_NUM_INTEROP_THREADS`` instead (``kws train --threads`` sets them before importing
    TensorFlow), and this says so rather than fail."""
    if not threads:
        return
    if cluster() is not None:
        print(f"--threads {threads}: in a cluster, through TF_NUM_INTRAOP_THREADS="
              f"{os.environ.get('TF_NUM_INTRAOP_THREADS', 'unset')} and TF_NUM_INTEROP_THREADS="
              f"{os.environ.get('TF_NUM_INTEROP_THREADS', 'unset')}", flush=True)
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as err:  # TensorFlow already started: its environment variables rule
        print(f"--threads {threads}: not applied by set_threads ({err}); TF_NUM_INTRAOP_THREADS="
              f"{os.environ.get('TF_NUM_INTRAOP_THREADS', 'unset')}", flush=True)


def _training_audio(config: Config, data: Path):
    clips = list_clips(data, config.words, "training",
                       unknown_fraction=config.train.unknown_fraction, seed=config.train.seed)
    if not clips.paths:
        raise KwsError(f"{data}: no training clips found (expected <word>/<speaker>_nohash_<n>.wav folders)")
    audio = load_audio(clips, config.audio.sample_rate, config.audio.clip_samples, "training clips")
    if not len(audio.targets):
        raise KwsError(f"{data}: none of the {len(clips.paths)} training clips could be read")
    require_classes([clips.labels[t] for t in np.unique(audio.targets)], config.words, data)
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
    return scores(data, export.litert_posteriors(path, x))


@dataclass
class Prepared:
    """Everything training and export read from the data directory."""

    data: Path
    labels: list[str]
    frontend: FrontEnd
    audio: Audio
    train_summary: dict
    noises: list[np.ndarray]
    noise_skipped: int
    augmenter: Augmenter
    val: EvalData
    val_x: np.ndarray
    sample_x: np.ndarray  # unaugmented training features: normaliser and int8 calibration
    negatives: list[NegativeSource]


def prepare(config: Config, data: str | Path) -> Prepared:
    """Decode the training and validation clips; compute validation and sample features."""
    tc, data = config.train, Path(data)
    sr, length = config.audio.sample_rate, config.audio.clip_samples
    audio, train_summary = _training_audio(config, data)
    _say(train_summary, "training")
    noises, bad_noise = load_noise(data, sr)
    augmenter = Augmenter(tc.augment, noises, sr, mel_centres(config.features), tc.seed)
    val = evaluation_audio(data, "validation", config, seed=tc.seed)
    _say(val.summary, "validation")
    frontend = FrontEnd(config.features, sr)
    rng = np.random.default_rng(tc.seed)
    pick = np.sort(rng.choice(len(audio.waves), min(NORMALISER_CLIPS, len(audio.waves)), replace=False))
    sample_x = np.concatenate([features(frontend, audio.waves[pick]),
                               features(frontend, silence_clips(augmenter, len(pick) // 10, length, tc.seed))])
    negatives = load_negatives(config)
    train_summary["negatives"] = [{"path": source.path, "files": len(n.files),
                                   "hours": round(sum(map(len, n.files)) / sr / 3600, 3),
                                   "windows_per_epoch": n.draws}
                                  for source, n in zip(tc.negatives.sources, negatives)]
    return Prepared(data, labels_for(config.words), frontend, audio, train_summary, noises,
                    len(bad_noise), augmenter, val, features(frontend, val.waves), sample_x,
                    negatives)


def _initial_model(bundle_dir: str, labels: list[str]) -> keras.Model:
    """The Keras model of a bundle with the same labels, to fine-tune."""
    bundle = load_bundle(bundle_dir)
    if bundle.labels != labels or not (bundle.path / "model.keras").is_file():
        raise KwsError(f"{bundle_dir}: train.init needs a bundle with a Keras model and the labels "
                       f"{', '.join(labels)}")
    print(f"starting from {bundle_dir}", flush=True)
    return keras.models.load_model(bundle.path / "model.keras", compile=False)


def load_negatives(config: Config) -> list[NegativeSource]:
    """The training files of every negative source, decoded (see ``kws.data.negatives``)."""
    tc, sr = config.train, config.audio.sample_rate
    out = []
    for source in tc.negatives.sources:
        holdout = tc.negatives.holdout if source.holdout is None else source.holdout
        paths = negative_files(source.path, "training", holdout)
        clips, _ = load_audio_files(paths, sr, f"negatives in {Path(source.path).name}")
        if not clips:
            raise KwsError(f"{source.path}: no readable training audio in this negative source")
        out.append(NegativeSource(clips, round(source.weight * tc.clips_per_class), source.context))
        print(f"negatives: {source.path}: {len(clips)} files, "
              f"{sum(map(len, clips)) / sr / 3600:.2f} h, {out[-1].draws} windows per epoch", flush=True)
    return out


# What an epoch's batches do not depend on: a teacher's targets cached under one run's key serve
# a student of another architecture, schedule or starting point trained on the same batches.
_NOT_IN_BATCHES = ("arch", "bilstm_merge", "width", "streamable", "epochs", "learning_rate", "warmup_epochs",
                   "patience", "init", "keep", "distill_weight")


def _teacher(config: Config, data: str | Path, labels: list[str], cache_root: Path) -> Teacher:
    """The run's teacher, its targets cached by everything its batches depend on."""
    tc = config.train
    teacher = Teacher(tc.teacher, labels, tc.distill_weight, tc.distill_temperature)
    batches = tc.model_dump(mode="json", exclude=set(_NOT_IN_BATCHES))
    key = json.dumps({"teacher": teacher_identity(teacher.model), "data": str(Path(data).resolve()),
                   "words": list(config.words), "audio": config.audio.model_dump(mode="json"),
                   "features": config.features.model_dump(mode="json"), "batches": batches}, sort_keys=True)
    teacher.cache = TargetCache(cache_root, key)
    print(f"teacher: {tc.teacher} (targets cached in {teacher.cache.folder})", flush=True)
    return teacher


def train_bundle(config: Config, data: str | Path, out: str | Path, workdir: str | Path,
                 resume: bool = False) -> dict:
    """Train ``config.train.arch`` on ``data`` and write the bundle ``out``; return its metrics."""
    tc = config.train
    keras.utils.set_random_seed(tc.seed)
    prep = prepare(config, data)
    labels = prep.labels
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
    sr = config.audio.sample_rate
    gap = tuple(ms_to_samples(ms, sr) for ms in tc.negatives.embedded_gap_ms)
    teacher = _teacher(config, data, labels, work.path.parent / "teacher-cache") if tc.teacher else None
    maker = BatchMaker(prep.audio.waves, prep.audio.targets, prep.frontend, prep.augmenter,
                       labels.index(SILENCE), labels.index(UNKNOWN), prep.negatives, gap, teacher)
    partials = round(tc.augment.partial_fraction * tc.clips_per_class)
    embedded = round(tc.negatives.embedded_fraction * tc.clips_per_class)
    batches, steps = training_dataset(maker, len(labels), tc.clips_per_class, partials,
                                      tc.batch_size, tc.seed, state["epoch"], tc.epochs, embedded)
    with strategy().scope():
        if state["epoch"]:
            model = keras.models.load_model(work.last)
        else:
            model = _initial_model(tc.init, labels) if tc.init else build(tc.arch, prep.sample_x, len(labels), tc)
            compile_model(model, tc.learning_rate, tc.warmup_epochs * steps, tc.epochs * steps, bool(teacher))
    print(f"{tc.arch}: {model.count_params():,} parameters, {steps} steps per epoch", flush=True)
    state = fit(model, batches, steps, tc.epochs, work, prep.val_x, prep.val.targets, labels,
                tc.patience, state, tc.keep)
    training = {"arch": tc.arch, "parameters": model.count_params(), "epochs_run": state["epoch"],
                "best_epoch": state["best_epoch"],
                # Epoch times, summed: a resumed run counts its earlier sessions too.
                "seconds": round(sum(h["seconds"] for h in state["history"])),
                "config": tc.model_dump(mode="json"), "history": state["history"]}
    plot_curves(state["history"], work.path / "curves.png")
    return finish(model, prep, config, out, work.path, training, [work.path / "curves.png"])


def finish(model: keras.Model, prep: Prepared, config: Config, out: str | Path, work: Path,
           training: dict, reports: list[Path]) -> dict:
    """Export to LiteRT (checked against Keras), score validation and test, write the bundle."""
    tc, labels = config.train, prep.labels
    rng = np.random.default_rng(tc.seed)
    calibration = prep.sample_x[rng.choice(len(prep.sample_x), min(CALIBRATION_WINDOWS, len(prep.sample_x)),
                                           replace=False)]
    litert, checks = export.litert_models(model, work, prep.val_x[:64], calibration, config.hop_frames)
    float_path = litert["model.tflite"]
    metrics = {"validation": _litert_scores(float_path, prep.val_x, prep.val)}
    test = evaluation_audio(prep.data, "testing", config, seed=tc.seed)
    if (test.targets > labels.index(SILENCE)).any():
        metrics["testing"] = _litert_scores(float_path, features(prep.frontend, test.waves), test)
    metrics["litert_vs_keras_max_diff"] = checks["litert_vs_keras_max_diff"]
    metrics["latency_ms"] = {"float": export.latency_ms(float_path, prep.val_x[0])}
    if "model_int8.tflite" in litert:
        int8_path = litert["model_int8.tflite"]
        metrics["validation_int8"] = _litert_scores(int8_path, prep.val_x, prep.val)
        metrics["int8_cost"] = {key: metrics["validation"][key] - metrics["validation_int8"][key]
                                for key in ("accuracy", "balanced_accuracy")}
        metrics["latency_ms"]["int8"] = export.latency_ms(int8_path, prep.val_x[0])

    shown = "testing" if "testing" in metrics else "validation"
    print(f"\n{shown} (LiteRT float):\n{table(metrics[shown])}", flush=True)
    reports = [*reports, work / "confusion.png", work / "metrics.json"]
    plot_confusion(metrics[shown], reports[-2], f"{training['arch']}, {shown} split: accuracy "
                   f"{100 * metrics[shown]['accuracy']:.1f}%, balanced "
                   f"{100 * metrics[shown]['balanced_accuracy']:.1f}%")
    reports[-1].write_text(to_json(metrics, indent=1) + "\n")
    summary = {"root": str(prep.data.resolve()), "training": prep.train_summary,
               "validation": prep.val.summary, "testing": test.summary,
               "noise_files": len(prep.noises), "noise_skipped": prep.noise_skipped}
    export.write_bundle(out, keras.Model(model.inputs, model.outputs),  # without optimizer state
                        litert, prep.frontend,
                        labels, config.audio.clip_seconds, {}, reports, arch=training["arch"],
                        data=summary, training=training, metrics=metrics,
                        stream=checks["stream"])
    if is_chief():  # the other tasks of a cluster said "not the chief" (export.write_bundle)
        print(f"bundle written to {out}", flush=True)
    return metrics
