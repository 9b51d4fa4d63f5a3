"""Typed, validated configuration: the one place defaults live is ``config.yaml``.

``load_config()`` reads the packaged ``config.yaml``; ``load_config(path)`` lays another file
over it (keys left out keep their defaults); ``with_overrides`` lays command-line values over
that. Every value passes through the same validation, and a bad one raises ``ConfigError``
with a single line that names the key and what is allowed.

``kws/config.yaml`` is a link to the repository's top-level ``config.yaml``, so a clone reads
the file its user edits, and the wheel carries that same file (``tests/test_config.py``). A key
given twice in one mapping is refused, naming both lines: YAML itself keeps the last one
without a word, so an edit to the first would silently do nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from kws.errors import KwsError
from kws.units import block_samples, ms_to_hops, seconds_to_samples

DEFAULT_CONFIG = (Path(__file__).parent / "config.yaml").resolve()

# The architectures `kws train --arch` knows: named here only (kws_train.models registers one
# module per name and checks that they agree).
ARCHITECTURES = ("cnn", "lstm", "bilstm", "dscnn", "tcresnet")

Pos = Field(gt=0)
Unit = Field(ge=0, le=1)
# A threshold is above 0: at 0 every word always scores over it, so the first to fire never
# re-arms (its score never falls below 0): one detection, then nothing, whatever is said.
Threshold = Field(gt=0, le=1)
THRESHOLD_RANGE = "between 0 and 1"  # 0 excluded, 1 included


def valid_threshold(value: float) -> bool:
    return 0 < value <= 1  # NaN fails this too

# Upper bounds: values past these are typos or units mistaken (seconds for ms), and some would
# try to allocate terabytes (a ring of 1e9 s, smoothing over 1e12 ms) or crash LiteRT (100,000
# threads). They are far above any sensible setting.
MAX_RING_SECONDS = 600.0        # ring buffer between the audio thread and processing
MAX_SPAN_MS = 600_000.0         # smoothing, refractory time, a block: ten minutes
MAX_THREADS = 256               # LiteRT threads
MAX_SAMPLE_RATE = 384_000
MAX_CLIP_SECONDS = 60.0


class ConfigError(KwsError):
    """A configuration value is missing, unknown or out of range."""


class _Section(BaseModel):
    # No inf or NaN anywhere: `hop_ms: .inf` is a mistake, never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AudioConfig(_Section):
    sample_rate: int = Field(ge=1000, le=MAX_SAMPLE_RATE)
    clip_seconds: float = Field(gt=0, le=MAX_CLIP_SECONDS)
    block_ms: float = Field(gt=0, le=MAX_SPAN_MS)
    ring_seconds: float = Field(gt=0, le=MAX_RING_SECONDS)
    device: int | str | None  # kws listen's input; None: the system default
    # kws listen warns when no audio at all has arrived for this long (a stalled audio server)
    stall_seconds: float = Field(default=2.0, gt=0, le=3600)

    @property
    def clip_samples(self) -> int:
        return seconds_to_samples(self.clip_seconds, self.sample_rate)

    @property
    def block_samples(self) -> int:
        return block_samples(self.block_ms, self.sample_rate)


class FeatureConfig(_Section):
    kind: Literal["log_mel", "mfcc"]
    window_ms: float = Field(gt=0, le=1000)
    stride_ms: float = Field(gt=0, le=1000)
    n_mels: int = Field(gt=0, le=1024)
    n_mfcc: int = Field(gt=0, le=1024)
    fmin: float = Field(ge=0)
    fmax: float = Field(gt=0, le=MAX_SAMPLE_RATE)

    @model_validator(mode="after")
    def _check(self) -> "FeatureConfig":
        if self.fmin >= self.fmax:
            raise ValueError(f"fmin ({self.fmin}) must be below fmax ({self.fmax})")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")
        return self

    @property
    def dim(self) -> int:
        """Values per feature frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


class DetectorConfig(_Section):
    model: str
    hop_ms: float = Field(gt=0, le=MAX_SPAN_MS)
    num_threads: int = Field(ge=1, le=MAX_THREADS)
    int8: bool
    streaming: bool = True


class PosteriorConfig(_Section):
    smoothing_ms: float | None = Field(ge=0, le=MAX_SPAN_MS)  # None: the bundle's (kws.posterior.smoothing_ms)
    threshold: float = Threshold
    thresholds: dict[str, float] = {}
    refractory_ms: float = Field(ge=0, le=MAX_SPAN_MS)

    @model_validator(mode="after")
    def _check(self) -> "PosteriorConfig":
        for word, value in self.thresholds.items():
            if not valid_threshold(value):
                raise ValueError(f"thresholds.{word} must be {THRESHOLD_RANGE}, got {value}")
        return self


class AugmentConfig(_Section):
    time_shift_ms: float = Field(ge=0)
    noise_probability: float = Unit
    noise_snr_db: tuple[float, float]
    gain_db: tuple[float, float]
    silence_rms: tuple[float, float]
    partial_fraction: float = Field(ge=0)
    partial_keep: tuple[float, float]
    specaugment_time_masks: int = Field(ge=0)
    specaugment_time_width: int = Field(ge=0)
    specaugment_freq_masks: int = Field(ge=0)
    specaugment_freq_width: int = Field(ge=0)
    speed: tuple[float, float]
    speed_probability: float = Unit
    vtlp: tuple[float, float]
    vtlp_probability: float = Unit
    room_probability: float = Unit
    room_rt60: tuple[float, float]
    rooms: int = Field(ge=1)
    colour_probability: float = Unit
    colour_db: float = Field(ge=0)
    narrowband_probability: float = Unit

    @model_validator(mode="after")
    def _ranges(self) -> "AugmentConfig":
        for low, high, name in ((*self.speed, "speed"), (*self.vtlp, "vtlp"), (*self.room_rt60, "room_rt60")):
            if not 0 < low <= high:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high, got [{low}, {high}]")
        for name in ("noise_snr_db", "gain_db", "silence_rms", "partial_keep"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high, got [{low}, {high}]")
        return self


class NegativeSource(_Section):
    path: str                       # folder of audio in which no command is said
    weight: float = Field(ge=0)     # one-second windows per epoch, as a fraction of clips_per_class
    context: bool = False           # also the running speech put around embedded commands
    # This source's own share of speakers kept apart (None: negatives.holdout; 0 for mined windows).
    holdout: float | None = Field(default=None, ge=0, le=1)


class NegativesConfig(_Section):
    sources: list[NegativeSource] = []
    holdout: float = Unit           # share of each source's speakers kept apart for validation
    embedded_fraction: float = Field(ge=0)
    embedded_gap_ms: tuple[float, float]

    @model_validator(mode="after")
    def _check(self) -> "NegativesConfig":
        low, high = self.embedded_gap_ms
        if not 0 <= low <= high:
            raise ValueError(f"embedded_gap_ms must be [low, high] with 0 <= low <= high, got [{low}, {high}]")
        return self


class TrainConfig(_Section):
    data: str | None
    arch: Literal[ARCHITECTURES]
    bilstm_merge: Literal["concat", "sum", "mul", "ave"]
    width: float = Pos
    streamable: bool = False        # tcresnet: the variant with a streaming twin (kws_train.stream)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    clips_per_class: int = Field(ge=1)
    learning_rate: float = Pos
    warmup_epochs: int = Field(ge=0)
    patience: int = Field(ge=1)
    seed: int = Field(ge=0)         # numpy's generators take no negative seed
    init: str | None = None         # a bundle whose Keras model training starts from (fine-tuning)
    keep: Literal["best", "last"] = "best"  # weights kept: best validation epoch, or the last
    teacher: str | None             # a model whose posteriors the model also learns (kws_train.teachers)
    distill_weight: float = Unit    # share of the target that is the teacher's posteriors
    distill_temperature: float = Pos  # a foreign teacher's logits are softened by it
    silence_fraction: float = Unit
    unknown_fraction: float = Unit
    augment: AugmentConfig
    negatives: NegativesConfig


class EnrollConfig(_Section):
    # kws enroll's own values of train.augment keys: a synthetic enrolment needs more speaker
    # and channel variety than a dataset of people does (studies/enroll_study.py measures each).
    augment: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known(self) -> "EnrollConfig":
        unknown = sorted(set(self.augment) - set(AugmentConfig.model_fields))
        if unknown:
            raise ValueError(f"enroll.augment: {unknown[0]!r} is not a train.augment key")
        return self


class StreamConfig(_Section):
    gap_seconds: tuple[float, float]
    unknown_fraction: float = Unit
    snr_db: float
    tolerance_ms: float = Field(ge=0)


class Config(_Section):
    # Dotted keys a config file or the command line set (not the packaged defaults): a value the
    # user chose, such as `words`, must agree with the model; a default need not.
    _user_keys: frozenset = PrivateAttr(default=frozenset())

    audio: AudioConfig
    features: FeatureConfig
    words: list[str] = Field(min_length=1)
    detector: DetectorConfig
    posterior: PosteriorConfig
    train: TrainConfig
    enroll: EnrollConfig
    stream: StreamConfig

    @model_validator(mode="after")
    def _check(self) -> "Config":
        stride, hop = self.features.stride_ms, self.detector.hop_ms
        ratio = hop / stride
        if round(ratio) < 1 or abs(ratio - round(ratio)) > 1e-9:  # 1e-9 ms is "0 strides"
            raise ValueError(f"detector.hop_ms ({hop:g}) must be a multiple of "
                             f"features.stride_ms ({stride:g}), at least one stride")
        clip_ms = 1000 * self.audio.clip_seconds
        if hop > clip_ms:
            raise ValueError(f"detector.hop_ms ({hop:g}) must not exceed the classifier's window "
                             f"(audio.clip_seconds: {clip_ms:g} ms)")
        if self.features.window_ms > clip_ms:
            raise ValueError(f"features.window_ms ({self.features.window_ms:g}) must not exceed "
                             f"audio.clip_seconds ({clip_ms:g} ms)")
        if len(set(self.words)) != len(self.words):
            raise ValueError("words must not repeat")
        try:  # a bad value is an error at load, not minutes into an enrolment
            self.enroll_augment  # noqa: B018
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ValueError(f"enroll.augment.{where}: {first['msg']}") from None
        return self

    @property
    def model_path(self) -> Path:
        return Path(self.detector.model)

    @property
    def enroll_augment(self) -> AugmentConfig:
        """``train.augment`` with ``enroll.augment``'s values: what ``kws enroll`` perturbs with."""
        return AugmentConfig(**{**self.train.augment.model_dump(), **self.enroll.augment})

    @property
    def hop_frames(self) -> int:
        """Feature frames per classifier hop (the step a streaming twin is exported for)."""
        return ms_to_hops(self.detector.hop_ms, self.features.stride_ms)

    def user_set(self, dotted: str) -> bool:
        """Whether a config file or the command line set ``dotted`` (e.g. ``"words"``)."""
        return dotted in self._user_keys

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "thresholds":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class _KeyGivenTwice(yaml.YAMLError):
    def __init__(self, key, line: int, first: int):
        super().__init__(f"{key!r} given twice")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` lays keys under the mapping's own: not a repetition
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error names it
            if first is not None:
                raise _KeyGivenTwice(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (UTF-8) file: byte {err.object[err.start]:#04x} "
                          f"at offset {err.start}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _KeyGivenTwice as err:
        raise ConfigError(f"{path}: line {err.line}: {err.key!r} is given twice (first on line {err.first}); "
                          "YAML would keep only the last: remove one") from None
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def _validate(data: dict, source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif isinstance(first.get("input"), bool):
            message += " (YAML reads bare yes/no/on/off as true/false: quote them)"
        raise ConfigError(f"{source}: {key}: {message}") from None


# Path-valued keys: a relative path is relative to the file that sets it.
PATH_KEYS = (("detector", "model"), ("train", "data"), ("train", "init"), ("train", "teacher"))


def _anchor(value, path: Path):
    if isinstance(value, str) and value:
        return str((path.resolve().parent / Path(value).expanduser()).resolve())
    return value


def _anchor_paths(data: dict, path: Path) -> dict:
    for section, key in PATH_KEYS:
        if isinstance(data.get(section), dict) and key in data[section]:
            data[section][key] = _anchor(data[section][key], path)
    negatives = data.get("train", {}).get("negatives") if isinstance(data.get("train"), dict) else None
    sources = negatives.get("sources") if isinstance(negatives, dict) else None
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and "path" in source:
            source["path"] = _anchor(source["path"], path)
    return data


def load_config(path: str | Path | None = None) -> Config:
    """Load the defaults, with the file at ``path`` (if any) laid over them."""
    data = _anchor_paths(_read_yaml(DEFAULT_CONFIG), DEFAULT_CONFIG)
    source = str(DEFAULT_CONFIG)
    user: set[str] = set()
    if path is not None:
        path = Path(path)
        over = _anchor_paths(_read_yaml(path), path)
        data = _merge(data, over)
        source = str(path)
        user = set(_dotted_keys(over))
    config = _validate(data, source)
    config._user_keys = frozenset(user)
    return config


def _dotted_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict) and key != "thresholds":
            keys += _dotted_keys(value, f"{dotted}.")
    return keys


def with_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Return ``config`` with dotted keys (``"detector.hop_ms"``) replaced and re-validated.

    ``None`` values are skipped, so unset command-line flags can be passed straight through.
    """
    data = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    new = _validate(data, "command line")
    new._user_keys = config._user_keys | {k for k, v in overrides.items() if v is not None}
    return new
