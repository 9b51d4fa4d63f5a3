"""Teachers for distillation (``train.teacher``): models whose class posteriors a student learns.

A teacher maps one batch as the student sees it (the augmented waveforms and their
``FrontEnd`` features) to posteriors ``(n, classes)`` in the student's label order. Three kinds,
chosen by what ``train.teacher`` names:

* a kws bundle (a folder with ``metadata.json``): its float LiteRT model on the features;
* a ``.tflite`` file with ``labels.txt`` beside it: a foreign LiteRT model that takes one
  second of raw 16-kHz audio (``float32 [1, samples]``) with its own front end inside and
  outputs logits, such as KWT-1 (Berg et al. 2021, Apache-2.0; ``NOTICE``);
* a ``.pb`` file with ``labels.txt`` beside it: a TensorFlow 1 frozen graph fed the bytes of a
  16-bit WAV file (``wav_data:0`` -> ``labels_softmax:0``), such as the "Hello Edge" models.
  TensorFlow is a training dependency, so this kind never reaches the runtime.

Foreign teachers run on the very waveform the student hears after augmentation: their front
ends differ from ours, so our features are no input for them. Their logits are softened by
``train.distill_temperature`` (``softmax(logits / T)``); a teacher that outputs probabilities is
softened the same way through their logarithm.

Each call costs a teacher run per clip (KWT-1: ~3.5 ms on one core). A batch is a pure function
of the run's seed, epoch and step (``kws_train.pipeline``), so its targets are cacheable:
``TargetCache`` keeps them on disk keyed by the teacher's file, the data and the config that
make the batch, and a resumed run, or a second student trained on the same data and seed,
reads them back instead of running the teacher again.

``python -m kws_train.teachers probe --teacher PATH --data DIR`` measures what a teacher says
about whole, shifted and partial words before its targets are trusted there.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import wave
from pathlib import Path

import numpy as np

from kws.bundle import load_bundle
from kws.errors import KwsError


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def _labels_beside(path: Path, labels: list[str]) -> np.ndarray:
    """Indices that put the teacher's outputs (``labels.txt`` beside ``path``) in ``labels``' order."""
    names = path.parent / "labels.txt"
    if not names.is_file():
        raise KwsError(f"{path}: a foreign teacher needs labels.txt beside it (one label a line, in output order)")
    theirs = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    if sorted(theirs) != sorted(labels):
        raise KwsError(f"{path}: the teacher's labels {theirs} differ from {labels}")
    return np.array([theirs.index(label) for label in labels])


class _PerThread:
    """One model instance per thread: tf.data makes batches on several threads, and neither a
    LiteRT interpreter nor a TF1 session feed is shared safely."""

    def __init__(self, make):
        self._make, self._local = make, threading.local()

    def get(self):
        if not hasattr(self._local, "model"):
            self._local.model = self._make()
        return self._local.model


class BundleTeacher:
    """A kws bundle's float LiteRT model on the student's features."""

    def __init__(self, path: str | Path, labels: list[str]):
        self.bundle = load_bundle(path)
        if self.bundle.labels != labels:
            raise KwsError(f"{path}: the teacher's labels {self.bundle.labels} differ from {labels}")
        self.identity = Path(self.bundle.path) / "model.tflite"
        self._model = _PerThread(self.bundle.classifier)

    def __call__(self, waves: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self._model.get().predict(x)


class LiteRTWaveTeacher:
    """A LiteRT model over one second of raw audio that outputs logits (KWT-1)."""

    def __init__(self, path: str | Path, labels: list[str], temperature: float = 1.0):
        self.identity, self.temperature = Path(path), temperature
        self._order = _labels_beside(self.identity, labels)

        def make():
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=str(self.identity), num_threads=1)
            interpreter.allocate_tensors()
            return interpreter
        try:
            detail = make().get_input_details()[0]
        except (ValueError, RuntimeError) as err:
            raise KwsError(f"{path}: cannot load LiteRT teacher ({err})") from None
        self.samples = int(detail["shape"][-1])
        self._model = _PerThread(make)

    def logits(self, waves: np.ndarray) -> np.ndarray:
        """The teacher's raw outputs ``(n, classes)``, in its own label order."""
        interpreter = self._model.get()
        source = interpreter.get_input_details()[0]["index"]
        target = interpreter.get_output_details()[0]["index"]
        out = []
        for clip in waves:  # the graph has a fixed batch of one
            interpreter.set_tensor(source, _fit(clip, self.samples)[None])
            interpreter.invoke()
            out.append(interpreter.get_tensor(target)[0].copy())
        return np.array(out, np.float32).reshape(len(waves), -1)

    def __call__(self, waves: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(waves)[:, self._order], self.temperature)


class FrozenGraphTeacher:
    """A TensorFlow 1 frozen graph fed WAV bytes, outputting probabilities ("Hello Edge")."""

    def __init__(self, path: str | Path, labels: list[str], temperature: float = 1.0, sample_rate: int = 16000):
        self.identity, self.temperature, self.sample_rate = Path(path), temperature, sample_rate
        self._order = _labels_beside(self.identity, labels)
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(self.identity.read_bytes())
        except Exception as err:  # protobuf raises its own DecodeError
            raise KwsError(f"{path}: not a TensorFlow frozen graph ({err})") from None
        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self._model = _PerThread(lambda: tf.compat.v1.Session(graph=self._graph))

    def logits(self, waves: np.ndarray) -> np.ndarray:
        """Log-probabilities ``(n, classes)`` in the teacher's own label order."""
        session = self._model.get()
        out = [session.run("labels_softmax:0", {"wav_data:0": _wav_bytes(clip, self.sample_rate)})[0]
               for clip in waves]
        return np.log(np.maximum(np.array(out, np.float32).reshape(len(waves), -1), 1e-7))

    def __call__(self, waves: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(waves)[:, self._order], self.temperature)


def _fit(clip: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros(samples, np.float32)
    out[:min(samples, len(clip))] = clip[:samples]
    return out


def _wav_bytes(clip: np.ndarray, sample_rate: int) -> bytes:
    pcm = (np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def load_teacher(path: str | Path, labels: list[str], temperature: float = 1.0):
    """The teacher ``path`` names (see the module docstring), its outputs in ``labels``' order."""
    path = Path(path)
    if path.is_dir():
        return BundleTeacher(path, labels)
    if path.suffix == ".tflite" and path.is_file():
        return LiteRTWaveTeacher(path, labels, temperature)
    if path.suffix == ".pb" and path.is_file():
        return FrozenGraphTeacher(path, labels, temperature)
    raise KwsError(f"{path}: a teacher is a kws bundle folder, a .tflite or a .pb file with labels.txt beside it")


class TargetCache:
    """Teacher posteriors of whole batches on disk, one ``.npy`` per ``(epoch, step)``.

    ``key`` must name everything the batch's waveforms depend on (data, seed, augmentation,
    epoch plan) and the teacher (its file's size and time, its temperature): a changed input
    is a new folder, never a stale read. Files are written whole (rename), so a run killed
    mid-write leaves no half file.
    """

    def __init__(self, root: str | Path, key: str):
        self.folder = Path(root) / hashlib.sha1(key.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "key.txt").write_text(key + "\n")

    def _path(self, seed: np.ndarray) -> Path:
        return self.folder / ("-".join(str(int(v)) for v in seed) + ".npy")

    def get(self, seed: np.ndarray) -> np.ndarray | None:
        path = self._path(seed)
        return np.load(path) if path.is_file() else None

    def put(self, seed: np.ndarray, targets: np.ndarray) -> None:
        handle, part = tempfile.mkstemp(dir=self.folder, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            np.save(out, targets)
        os.replace(part, self._path(seed))


def teacher_identity(teacher) -> str:
    """What names a teacher's outputs in a cache key: its file, size, time and temperature."""
    stat = Path(teacher.identity).stat()
    return f"{Path(teacher.identity).resolve()}:{stat.st_size}:{int(stat.st_mtime)}:" \
           f"T={getattr(teacher, 'temperature', 1.0)}"


def _shifted(wave: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(wave)
    if samples >= 0:
        out[samples:] = wave[:len(wave) - samples]
    else:
        out[:samples] = wave[-samples:]
    return out


def _part(wave: np.ndarray, bounds: tuple[int, int], share: float, head: bool) -> np.ndarray:
    """The first (``head``) or last ``share`` of the word in ``bounds``, where it was."""
    start, end = bounds
    keep = max(1, round((end - start) * share))
    out = np.zeros_like(wave)
    span = slice(start, start + keep) if head else slice(end - keep, end)
    out[span] = wave[span]
    return out


def probe(teacher, waves: np.ndarray, targets: np.ndarray, labels: list[str], sample_rate: int) -> list[dict]:
    """What ``teacher`` says about each clip whole, shifted and cut: per condition, how often its
    top class is the word, is some other command word, and its mean probability of the word."""
    from kws.data.speech_commands import SILENCE, UNKNOWN
    from kws.eval.testaudio import speech_bounds

    bounds = [speech_bounds(w, sample_rate) for w in waves]
    ms = sample_rate // 1000
    conditions = {"whole": lambda w, b: w}
    for shift in (-300, -200, -100, 100, 200, 300):
        conditions[f"shifted {shift:+d} ms"] = lambda w, b, s=shift: _shifted(w, s * ms)
    for share in (0.3, 0.5, 0.7):
        conditions[f"first {share:.0%} of the word"] = lambda w, b, s=share: _part(w, b, s, True)
        conditions[f"last {share:.0%} of the word"] = lambda w, b, s=share: _part(w, b, s, False)
    commands = np.array([label not in (SILENCE, UNKNOWN) for label in labels])
    rows = []
    for name, make in conditions.items():
        posteriors = teacher(np.stack([make(w, b) for w, b in zip(waves, bounds)]), None)
        top = posteriors.argmax(1)
        rows.append({"condition": name, "top is the word": float(np.mean(top == targets)),
                     "top is another command": float(np.mean((top != targets) & commands[top])),
                     "mean p(word)": float(posteriors[np.arange(len(targets)), targets].mean())})
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from kws.config import load_config
    from kws.data.speech_commands import SILENCE, UNKNOWN, labels_for, list_clips, load_audio

    parser = argparse.ArgumentParser(prog="python -m kws_train.teachers", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("probe", help="what a teacher says about whole, shifted and partial words")
    cmd.add_argument("--teacher", required=True, help="a .tflite or .pb file with labels.txt beside it")
    cmd.add_argument("--data", required=True, help="Speech Commands root")
    cmd.add_argument("--split", default="validation")
    cmd.add_argument("--official", action="store_true", help="only the official test speakers' clips")
    cmd.add_argument("--temperature", type=float, default=1.0)
    cmd.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    config = load_config()
    labels = labels_for(config.words)
    try:
        teacher = load_teacher(args.teacher, labels, args.temperature)
        clips = list_clips(args.data, config.words, args.split)
    except KwsError as err:
        parser.exit(2, f"error: {err}\n")
    audio = load_audio(clips, config.audio.sample_rate, config.audio.clip_samples)
    keep = audio.targets != labels.index(SILENCE)
    keep &= audio.targets != labels.index(UNKNOWN)
    if args.official and audio.official is not None:
        keep &= audio.official
    rows = probe(teacher, audio.waves[keep], audio.targets[keep], labels, config.audio.sample_rate)
    print(f"{args.teacher}: {keep.sum()} command-word clips of {args.data} ({args.split}"
          f"{', official test speakers' if args.official else ''})")
    print(f"{'condition':<26}{'top = word':>12}{'top = other cmd':>17}{'mean p(word)':>14}")
    for row in rows:
        print(f"{row['condition']:<26}{row['top is the word']:>12.1%}{row['top is another command']:>17.1%}"
              f"{row['mean p(word)']:>14.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
