"""Model bundles: a directory holding a trained classifier and everything needed to feed it.

Layout::

    metadata.json       labels, sample rate, clip length, feature parameters, thresholds,
                        training data summary and metrics
    frontend.npz        the mel filterbank the model was trained with (``basis``)
    model.tflite        float LiteRT model: (1, frames, dim) features -> (1, classes) posteriors,
                        or logits where metadata says ``"outputs": "logits"`` (softmax at run time)
    model_int8.tflite   int8-quantised variant (optional)
    model_stream.tflite the streaming twin (optional; metadata ``stream``): the frames of one
                        hop and the state -> posteriors and the next state
    model.keras         the Keras model, for further training (optional)

The feature parameters travel with the model, so streaming computes exactly the features the
model was trained on; a config that disagrees is an error rather than silent garbage.
Bundles are written atomically with ``bundle_writer``.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from kws.config import MAX_SPAN_MS, THRESHOLD_RANGE, Config, FeatureConfig, valid_threshold
from kws.errors import KwsError
from kws.features import FrontEnd
from kws.labels import NON_WORDS, reportable
from kws.quiet import quiet_c_stderr
from kws.writes import check_target, staged, to_json

FORMAT = 1
STREAM_MODEL = "model_stream.tflite"


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
    # The posterior smoothing its thresholds were chosen with (kws_train.thresholds); None: the config's.
    smoothing_ms: float | None = None

    @property
    def words(self) -> list[str]:
        """Labels that are reported as detections (not ``_silence_`` or ``_unknown_``)."""
        return reportable(self.labels)

    @property
    def has_int8(self) -> bool:
        return (self.path / "model_int8.tflite").is_file()

    @property
    def stream_step(self) -> int | None:
        """Frames per call of the streaming model; ``None`` when the bundle has none."""
        stream = self.metadata.get("stream")
        if not isinstance(stream, dict) or not (self.path / STREAM_MODEL).is_file():
            return None
        step = stream.get("step")
        return step if isinstance(step, int) and step > 0 else None

    def model_file(self, int8: bool = False) -> Path:
        path = self.path / ("model_int8.tflite" if int8 else "model.tflite")
        if not path.is_file():
            raise BundleError(f"{self.path}: bundle has no {path.name}")
        return path

    def frontend(self) -> FrontEnd:
        """The feature front end, with the exact mel filterbank used in training."""
        path = self.path / "frontend.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                if "basis" not in data.files:
                    raise BundleError(f"{path}: no mel filterbank ('basis') in it")
                basis = data["basis"]
        except BundleError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as err:
            raise BundleError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
        if not isinstance(basis, np.ndarray) or basis.dtype.kind not in "fiu" or basis.ndim != 2:
            raise BundleError(f"{path}: the mel filterbank must be a 2-D array of numbers, got "
                              f"{getattr(basis, 'dtype', type(basis))} of shape "
                              f"{getattr(basis, 'shape', '?')}")
        if not np.isfinite(basis).all():
            raise BundleError(f"{path}: the mel filterbank holds NaN or infinite values")
        try:
            return FrontEnd(self.feature_config, self.sample_rate, basis.astype(np.float32))
        except ValueError as err:
            raise BundleError(f"{path}: {err}") from None

    def classifier(self, num_threads: int = 1, int8: bool = False):
        """The LiteRT window classifier, checked to output probabilities (``check_posteriors``)."""
        from kws.inference import Classifier

        model = self.model_file(int8)
        return self._checked(model, lambda: Classifier(model, num_threads=num_threads, softmax=self._logits))

    def streaming_classifier(self, num_threads: int = 1):
        """The streaming LiteRT classifier (``kws.inference.StreamingClassifier``), checked like
        ``classifier`` and reset."""
        from kws.inference import StreamingClassifier

        model = self.path / STREAM_MODEL
        return self._checked(model, lambda: StreamingClassifier(model, num_threads=num_threads))

    @property
    def _logits(self) -> bool:
        return self.metadata.get("outputs") == "logits"

    def _checked(self, model: Path, make):
        # LiteRT's own start-up line ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
        # goes to the C stderr; it is kept out of kws's output.
        with quiet_c_stderr():
            classifier = make()
            probe = np.zeros(classifier.input_shape, np.float32)
            try:
                probs = classifier(probe)
            except (ValueError, RuntimeError) as err:
                raise BundleError(f"{model}: the model does not run ({err})") from None
        classifier.reset()
        check_posteriors(probs, model)
        return classifier


def check_posteriors(probs: np.ndarray, where) -> None:
    """Raise ``BundleError`` unless ``probs`` are class probabilities: finite, in [0, 1],
    summing to 1. A model that outputs logits or NaN would otherwise print words with scores
    such as 188.3, or never fire, without a word said."""
    probs = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(probs).all():
        raise BundleError(f"{where}: the model outputs NaN or infinite scores")
    low, high, total = probs.min(), probs.max(), probs.sum()
    if low < -1e-3 or high > 1 + 1e-3 or abs(total - 1) > 0.02:
        raise BundleError(f"{where}: the model's outputs are not probabilities (range "
                          f"{low:.4g} to {high:.4g}, sum {total:.4g}); if it outputs logits, "
                          'its metadata.json must say "outputs": "logits"')


def load_bundle(path: str | Path, config: Config | None = None) -> Bundle:
    """Read the bundle at ``path``; with ``config``, check that both agree on the audio front end."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no metadata.json); train one with "
                          "`kws train` or pass --model DIR")
    try:
        meta = json.loads(meta_path.read_bytes())
    except (ValueError, OSError) as err:
        raise BundleError(f"{meta_path}: malformed metadata ({type(err).__name__}: {err})") from None
    bundle = _parse_metadata(path, meta_path, meta)
    if not (path / "frontend.npz").is_file():
        raise BundleError(f"{path}: bundle has no frontend.npz")
    bundle.frontend()  # a broken filterbank is an error now, not in the middle of a run
    if config is not None:
        check_compatible(bundle, config)
    return bundle


def _parse_metadata(path: Path, meta_path: Path, meta) -> Bundle:
    """The ``Bundle`` that ``meta`` describes; ``BundleError`` naming the first bad field."""
    def bad(what: str) -> BundleError:
        return BundleError(f"{meta_path}: malformed metadata ({what})")

    if not isinstance(meta, dict):
        raise bad(f"a JSON object is expected, got {type(meta).__name__ if meta is not None else 'null'}")
    if meta.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {meta.get('format')!r}, this kws reads {FORMAT}")
    for key in ("labels", "sample_rate", "clip_seconds", "features"):
        if key not in meta:
            raise bad(f"no {key!r}")
    labels = meta["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or \
            not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise bad("'labels' must be a list of at least two distinct names")
    rate, clip = meta["sample_rate"], meta["clip_seconds"]
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise bad(f"'sample_rate' must be a positive integer, got {rate!r}")
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < math.inf:
        raise bad(f"'clip_seconds' must be a positive number, got {clip!r}")
    if not isinstance(meta["features"], dict):
        raise bad("'features' must be an object")
    try:
        features = FeatureConfig.model_validate(meta["features"])
    except ValueError as err:
        first = err.errors()[0] if hasattr(err, "errors") else {"loc": (), "msg": str(err)}
        key = ".".join(str(p) for p in first["loc"])
        raise bad(f"features.{key}: {first['msg']}") from None
    thresholds = meta.get("thresholds", {})
    if thresholds is None:
        thresholds = {}
    if not isinstance(thresholds, dict):
        raise bad(f"'thresholds' must be an object of word: threshold, got {type(thresholds).__name__}")
    checked = {}
    for word, value in thresholds.items():
        if word not in labels or word in NON_WORDS:
            raise bad(f"thresholds: {word!r} is not one of the model's words")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid_threshold(value):
            raise bad(f"thresholds.{word} must be a number {THRESHOLD_RANGE}, got {value!r}")
        checked[word] = float(value)
    if meta.get("outputs", "probabilities") not in ("probabilities", "logits"):
        raise bad(f"'outputs' must be \"probabilities\" or \"logits\", got {meta['outputs']!r}")
    smoothing = meta.get("smoothing_ms")
    if smoothing is not None and (isinstance(smoothing, bool) or not isinstance(smoothing, (int, float))
                                  or not 0 <= smoothing <= MAX_SPAN_MS):
        raise bad(f"'smoothing_ms' must be a number of milliseconds from 0 to {MAX_SPAN_MS:g}, got {smoothing!r}")
    return Bundle(path=path, labels=list(labels), sample_rate=rate, clip_seconds=float(clip),
                  feature_config=features, thresholds=checked, metadata=meta,
                  smoothing_ms=None if smoothing is None else float(smoothing))


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


# What bundles written before the manifest (metadata "files") held; anything else in their folder
# is someone else's.
LEGACY_FILES = frozenset({"metadata.json", "frontend.npz", "model.tflite", "model_int8.tflite", STREAM_MODEL,
                          "model.keras", "metrics.json", "confusion.png", "curves.png", "verifier.npz",
                          "enroll_report.json", "enroll_report.txt"})


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a directory kws wrote as a bundle (its metadata.json says so)."""
    return _own_files(Path(path)) is not None


def _own_files(path: Path) -> set[str] | None:
    """The names a bundle at ``path`` wrote (its manifest, or ``LEGACY_FILES``); None if not a bundle."""
    try:
        meta = json.loads((path / "metadata.json").read_bytes()) if path.is_dir() else None
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    files = meta.get("files")
    return set(files) if isinstance(files, list) and all(isinstance(f, str) for f in files) else set(LEGACY_FILES)


def check_bundle_target(out: str | Path) -> Path:
    """Raise ``BundleError`` unless a bundle can be written at ``out``, before any long work.

    ``out`` may be missing, an empty directory, or a bundle kws wrote and nothing else: the
    whole folder is swapped for the new bundle (``bundle_writer``), so a folder that also holds
    the user's files (recordings, notes) is refused, never emptied. Creates nothing.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"{out}: exists and is not a directory; refusing to replace it "
                          "(choose another --out)")
    try:
        check_target(out.parent, f"{out}: its folder", directory=True)  # where it is swapped in
    except KwsError as err:
        raise BundleError(str(err)) from None
    if not out.is_dir() or not any(out.iterdir()):
        return out
    own = _own_files(out)
    if own is None:
        raise BundleError(f"{out}: exists and is not a kws model bundle; refusing to replace "
                          "what it holds (choose another --out, or empty it)")
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if p.name not in own)
    if foreign:
        raise BundleError(f"{out}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''} "
                          "besides the bundle; refusing to replace the folder (move them out, or "
                          "choose another --out)")
    return out


@contextlib.contextmanager
def bundle_writer(out: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``out`` in one step.

    ``out`` must pass ``check_bundle_target`` (before and again after the body): nothing but a
    bundle kws wrote is ever replaced. ``kws.writes.staged`` does the rest: the previous bundle
    stays in place and usable until the new one is complete, and a raising body or a killed
    process leaves ``out`` untouched. The new bundle's metadata lists its files (``files``), so a
    later write knows which are its own.
    """
    out = check_bundle_target(out)
    with staged(out, directory=True) as staging:
        yield staging
        check_bundle_target(out)  # still true after the long body?
        if (staging / "metadata.json").is_file():
            merge_metadata(staging, files=sorted(p.name for p in staging.iterdir()))


def rewrite_metadata(bundle: Bundle, files: Iterable[Path] = (), **changes) -> None:
    """Rewrite ``bundle`` with ``changes`` merged into its metadata and ``files`` added (or
    replacing theirs by name), atomically like any write."""
    with bundle_writer(bundle.path) as staging:
        for item in [*bundle.path.iterdir(), *files]:
            shutil.copyfile(item, staging / item.name)
        _write_json(staging / "metadata.json", {**bundle.metadata, **changes})


def merge_metadata(directory: Path, **changes) -> None:
    """Merge ``changes`` into the metadata of a bundle being built in ``directory`` (a
    ``bundle_writer`` staging directory: nobody reads it yet, so it is rewritten in place)."""
    path = directory / "metadata.json"
    _write_json(path, {**json.loads(path.read_bytes()), **changes})


def _write_json(path: Path, meta: dict) -> None:
    path.write_text(to_json(meta, indent=2) + "\n")


def write_metadata(directory: Path, *, labels: list[str], sample_rate: int, clip_seconds: float,
                   features: FeatureConfig, basis: np.ndarray, thresholds: dict[str, float],
                   **extra) -> None:
    """Write ``metadata.json`` and ``frontend.npz`` into a bundle directory being built."""
    meta = {"format": FORMAT, "labels": labels, "sample_rate": sample_rate,
            "clip_seconds": clip_seconds, "features": features.model_dump(),
            "thresholds": thresholds, **extra}
    _write_json(directory / "metadata.json", meta)
    np.savez(directory / "frontend.npz", basis=basis.astype(np.float32))
