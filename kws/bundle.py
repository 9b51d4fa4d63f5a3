"""Model bundles: a directory holding a trained classifier and everything needed to feed it.

Layout::

    metadata.json       labels, sample rate, clip length, feature parameters, thresholds,
                        training data summary and metrics
    frontend.npz        the mel filterbank the model was trained with (``basis``)
    model.tflite        float LiteRT model: (1, frames, dim) features -> (1, classes) posteriors,
                        or logits where metadata says ``"outputs": "logits"`` (softmax at run time)
    model_int8.tflite   int8-quantised variant (optional)
    model.keras         the Keras model, for further training (optional)

The feature parameters travel with the model, so streaming computes exactly the features the
model was trained on; a config that disagrees is an error rather than silent garbage.
Bundles are written atomically with ``bundle_writer``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from kws.config import Config, FeatureConfig
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.labels import NON_WORDS, reportable  # noqa: F401  (NON_WORDS: re-exported)

FORMAT = 1


class BundleError(KwsError):
    """A bundle is missing, incomplete, or disagrees with the configuration."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    labels: list[str]
    sample_rate: int
    clip_seconds: float
    feature_config: FeatureConfig  # the front end the model was trained on
    thresholds: dict[str, float] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        """Labels that are reported as detections (not ``_silence_`` or ``_unknown_``)."""
        return reportable(self.labels)

    @property
    def has_int8(self) -> bool:
        return (self.path / "model_int8.tflite").is_file()

    def model_file(self, int8: bool = False) -> Path:
        path = self.path / ("model_int8.tflite" if int8 else "model.tflite")
        if not path.is_file():
            raise BundleError(f"{self.path}: bundle has no {path.name}")
        return path

    def frontend(self) -> FrontEnd:
        """The feature front end, with the exact mel filterbank used in training."""
        with np.load(self.path / "frontend.npz") as data:
            basis = data["basis"]
        return FrontEnd(self.feature_config, self.sample_rate, basis)

    def classifier(self, num_threads: int = 1, int8: bool = False):
        from kws.inference import Classifier

        return Classifier(self.model_file(int8), num_threads=num_threads,
                          softmax=self.metadata.get("outputs") == "logits")


def load_bundle(path: str | Path, config: Config | None = None) -> Bundle:
    """Read the bundle at ``path``; with ``config``, check that both agree on the audio front end."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no metadata.json); train one with "
                          "`kws train` or pass --model DIR")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise BundleError(f"{path}: bundle format {meta.get('format')!r}, this kws reads {FORMAT}")
        bundle = Bundle(path=path, labels=list(meta["labels"]), sample_rate=int(meta["sample_rate"]),
                        clip_seconds=float(meta["clip_seconds"]),
                        feature_config=FeatureConfig.model_validate(meta["features"]),
                        thresholds={k: float(v) for k, v in meta.get("thresholds", {}).items()},
                        metadata=meta)
    except (ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{meta_path}: malformed metadata ({type(err).__name__}: {err})") from None
    if not (path / "frontend.npz").is_file():
        raise BundleError(f"{path}: bundle has no frontend.npz")
    if config is not None:
        check_compatible(bundle, config)
    return bundle


def check_compatible(bundle: Bundle, config: Config) -> None:
    """Raise ``BundleError`` if the model was trained on audio features other than the config's."""
    mine = {"audio.sample_rate": config.audio.sample_rate,
            "audio.clip_seconds": config.audio.clip_seconds,
            **{f"features.{k}": v for k, v in config.features.model_dump().items()}}
    theirs = {"audio.sample_rate": bundle.sample_rate, "audio.clip_seconds": bundle.clip_seconds,
              **{f"features.{k}": v for k, v in bundle.feature_config.model_dump().items()}}
    for key, value in mine.items():
        # MFCC count is irrelevant to log-mel models and vice versa.
        if key == "features.n_mfcc" and bundle.feature_config.kind != "mfcc":
            continue
        if theirs[key] != value:
            raise BundleError(f"{bundle.path}: model was trained with {key}={theirs[key]}, "
                              f"but the config says {value}")


@contextlib.contextmanager
def bundle_writer(out: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``out`` in one rename.

    If the body raises (or the process dies), ``out`` is untouched: a crash never leaves a
    half-written bundle where a reader would find it.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        staging.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def rewrite_metadata(bundle: Bundle, **changes) -> None:
    """Rewrite ``bundle`` with ``changes`` merged into its metadata, atomically like any write."""
    with bundle_writer(bundle.path) as staging:
        for item in bundle.path.iterdir():
            shutil.copyfile(item, staging / item.name)
        _write_json(staging / "metadata.json", {**bundle.metadata, **changes})


def _write_json(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2) + "\n")


def write_metadata(directory: Path, *, labels: list[str], sample_rate: int, clip_seconds: float,
                   features: FeatureConfig, basis: np.ndarray, thresholds: dict[str, float],
                   **extra) -> None:
    """Write ``metadata.json`` and ``frontend.npz`` into a bundle directory being built."""
    meta = {"format": FORMAT, "labels": labels, "sample_rate": sample_rate,
            "clip_seconds": clip_seconds, "features": features.model_dump(),
            "thresholds": thresholds, **extra}
    _write_json(directory / "metadata.json", meta)
    np.savez(directory / "frontend.npz", basis=basis.astype(np.float32))
