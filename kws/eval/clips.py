"""Evaluation data and scoring of a bundle's LiteRT model (no TensorFlow needed).

Validation during training and ``kws eval`` read their clips the same way
(``evaluation_audio``): the split's word clips, ~``unknown_fraction`` unknown clips, and
silence: the ``_silence_`` clips where the data has them (the official test's, in the
archive or the subset's ``_silence_/``), else ``silence_fraction`` clips drawn from the
background noise with a fixed seed.

Where the data marks the official test speakers (``kws.data.speech_commands``), ``official``
selects their clips plus every silence clip (silence has no speaker), and scores are reported
for them beside the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kws.bundle import Bundle
from kws.config import Config
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.data.noise import NoiseBed, silence_clips
from kws.data.speech_commands import SILENCE, UNKNOWN, list_clips, load_audio, load_noise
from kws.eval.metrics import score


@dataclass
class EvalData:
    waves: np.ndarray
    targets: np.ndarray
    labels: list[str]
    summary: dict
    official: np.ndarray | None = None  # per clip: an official test speaker's (or silence)


def evaluation_audio(root: str | Path, split: str, config: Config, seed: int = 0) -> EvalData:
    """Labelled clips of ``split`` for scoring, silence included (see the module docstring)."""
    sr, length = config.audio.sample_rate, config.audio.clip_samples
    clips = list_clips(root, config.words, split, unknown_fraction=config.train.unknown_fraction,
                       seed=seed)
    audio = load_audio(clips, sr, length, desc=f"{split} clips")
    silence_label = clips.labels.index(SILENCE)
    waves, targets, generated, official = audio.waves, audio.targets, 0, audio.official
    if not (targets == silence_label).any():
        noises, _ = load_noise(root, sr)
        words = int((targets > clips.labels.index(UNKNOWN)).sum())  # as the official recipe
        generated = round(config.train.silence_fraction * words)
        extra = silence_clips(NoiseBed(config.train.augment, noises, sr), generated, length, seed)
        waves = np.concatenate([waves, extra])
        targets = np.concatenate([targets, np.full(generated, silence_label, np.int32)])
        if official is not None:
            official = np.concatenate([official, np.ones(generated, bool)])
    if official is not None:
        official = official | (targets == silence_label)
    counts = np.bincount(targets, minlength=len(clips.labels))
    summary = {"split": split, "clips": int(len(targets)),
               "per_class": {label: int(n) for label, n in zip(clips.labels, counts)},
               "generated_silence": generated, "skipped": len(audio.skipped),
               "skipped_examples": audio.skipped[:5], "notes": clips.notes}
    if official is not None:
        summary["official_clips"] = int(official.sum())
    return EvalData(waves, targets, clips.labels, summary, official)


def posteriors(classifier, frontend: FrontEnd, waves: np.ndarray, desc: str = "classifying") -> np.ndarray:
    """Run ``classifier`` (a ``kws.inference.Classifier``) over every clip's features."""
    out = np.empty((len(waves), classifier.num_classes), np.float32)
    for i, wave in enumerate(tqdm(waves, desc=desc, unit="clip", leave=False, disable=None)):
        out[i] = classifier(frontend.compute(wave))
    return out


def evaluate_bundle(bundle: Bundle, data: EvalData, int8: bool = False) -> dict:
    """Scores of the bundle's LiteRT model on ``data``, plus the data summary."""
    if bundle.labels != data.labels:
        raise KwsError(f"{bundle.path}: model labels {bundle.labels} differ from the data's "
                       f"{data.labels} (set `words` in the config to the model's words)")
    if not len(data.targets):
        raise KwsError(f"no clips to evaluate in the {data.summary['split']} split")
    probs = posteriors(bundle.classifier(int8=int8), bundle.frontend(), data.waves)
    return {**scores(data, probs), "data": data.summary,
            "model": {"path": str(bundle.path), "int8": bool(int8)}}


def scores(data: EvalData, probs: np.ndarray) -> dict:
    """``kws.eval.metrics.score`` of the argmax of ``probs``; where ``data`` marks official test
    speakers, their scores too, under ``"official_test_speakers"``."""
    predicted = probs.argmax(1)
    out = score(data.targets, predicted, data.labels)
    if data.official is not None and data.official.any():
        out["official_test_speakers"] = score(data.targets[data.official], predicted[data.official],
                                              data.labels)
    return out
