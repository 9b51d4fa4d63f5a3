"""Train the verifier head (``kws.verifier``): a small MLP on Google's speech embedding.

The embedding models are frozen; only a head over the flattened embedding sequence of a
1.5-s window (9 x 96 values) is trained, in numpy (no TensorFlow needed). Classes: the
bundle's words, and ``_other_``. Windows are cut the way the detector will cut them: 1.5 s of
audio ending at a detection, which fires from the middle of a word to a few hundred ms after
its end, so a positive's word end is placed ``END_SPREAD`` seconds before the window's end.

- positives: Speech Commands training clips of each word (``--per-word`` at most), over
  background noise at ``SNR_DB``;
- negatives (``_other_``): every training ``_unknown_`` clip, placed the same way; windows of
  the training speakers of ``--negatives`` folders (``kws.data.negatives``, holdout 0.3);
  background noise alone; audio files of ``--hard-negatives`` folders (their last 1.5 s); and
  candidates mined from ``--mine`` streams (``kws make-stream`` output of training audio): the
  1.5 s ending at each detection of the first stage (the bundle) at ``--mine-threshold``
  that is not on a labelled command word.

    python -m kws_train.verifier --data ../shared/speech_commands \\
        --negatives ../shared/speech_negatives --mine runs/streams/speech_training.wav \\
        --mine runs/streams/other_training.wav --model models/default --cache runs/verifier_cache

writes ``verifier.npz`` into the bundle ``--model``. ``--cache`` keeps each source's
embeddings, so a second run that only changes the head costs seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio
from kws.data.negatives import audio_files, negative_files
from kws.data.speech_commands import list_clips, load_noise
from kws.eval.testaudio import speech_bounds
from kws.labels import UNKNOWN
from kws.verifier import (HEAD_FILE, OTHER, SAMPLE_RATE, Head, embedding_count,
                          load_embedding)

WINDOW_SECONDS = 1.5
END_SPREAD = (-0.1, 0.4)  # seconds from the word's end to the window's end
SNR_DB = (5.0, 30.0)
SPEECH_HOP = 0.75  # seconds between windows of negative speech
NOISE_WINDOWS = 300


def log(msg: str) -> None:
    print(f"verifier: {msg}", file=sys.stderr, flush=True)


def _noise_segment(noises: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    if not noises:
        return np.zeros(n, np.float32)
    noise = noises[rng.integers(len(noises))]
    if len(noise) <= n:
        noise = np.resize(noise, n)
    start = rng.integers(len(noise) - n + 1)
    seg = noise[start:start + n].astype(np.float32)
    return seg / max(float(np.sqrt(np.mean(seg ** 2))), 1e-6)


def add_noise(window: np.ndarray, level_rms: float, noises, rng) -> np.ndarray:
    """``window`` plus unit-RMS noise at a random SNR below ``level_rms``."""
    snr = rng.uniform(*SNR_DB)
    out = window + _noise_segment(noises, len(window), rng) * level_rms / 10 ** (snr / 20)
    return np.clip(out, -1, 1).astype(np.float32)


def place_word(clip: np.ndarray, length: int, rng, noises) -> np.ndarray:
    """A ``length``-sample window whose end falls ``END_SPREAD`` after the clip's speech ends."""
    start, end = speech_bounds(clip, SAMPLE_RATE)
    target_end = length - round(rng.uniform(*END_SPREAD) * SAMPLE_RATE)
    offset = target_end - end  # window index of clip sample 0
    window = np.zeros(length, np.float32)
    lo, hi = max(0, offset), min(length, offset + len(clip))
    if hi > lo:
        window[lo:hi] = clip[lo - offset:hi - offset]
    speech = clip[start:end]
    rms = float(np.sqrt(np.mean(speech ** 2))) if len(speech) else 0.01
    return add_noise(window, max(rms, 1e-4), noises, rng)


def last_window(audio: np.ndarray, length: int) -> np.ndarray:
    w = audio[-length:]
    return np.pad(w, (length - len(w), 0)) if len(w) < length else w


def speech_windows(audio: np.ndarray, length: int, rng, noises) -> list[np.ndarray]:
    hop = round(SPEECH_HOP * SAMPLE_RATE)
    out = []
    for start in range(0, max(1, len(audio) - length + 1), hop):
        w = last_window(audio[start:start + length], length)
        rms = float(np.sqrt(np.mean(w ** 2)))
        out.append(add_noise(w, max(rms, 1e-4), noises, rng))
    return out


def mined_windows(model: str, config, stream: str, threshold: float, length: int) -> list[np.ndarray]:
    """The window ending at each first-stage candidate on ``stream`` not on a command word."""
    from kws.eval.scoring import record_stream, replay_trigger
    from kws.eval.testaudio import labels_path, read_labels
    from kws.bundle import load_bundle

    bundle = load_bundle(model, config)
    labels = read_labels(labels_path(stream))
    rec = record_stream(bundle, config, stream, labels)
    levels = np.array([threshold if c in bundle.words else np.inf for c in bundle.labels])
    found = replay_trigger(rec.times, rec.scores, bundle.labels, levels,
                           config.posterior.refractory_ms / 1000)
    words = [lab for lab in labels if lab.word in bundle.words]
    tol = config.stream.tolerance_ms / 1000
    audio = read_audio(stream, SAMPLE_RATE)
    out = []
    for t, _word in found:
        if any(lab.start < t <= lab.end + tol for lab in words):
            continue
        end = round(t * SAMPLE_RATE)
        out.append(last_window(audio[:end], length))
    return out


class Embedder:
    """Embeds windows, timing it, with an optional per-source cache."""

    def __init__(self, cache: Path | None, threads: int):
        self.embedding = load_embedding(threads)
        self.cache = cache
        self.seconds = 0.0
        self.audio_seconds = 0.0
        self.windows = 0
        if cache:
            cache.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, make) -> np.ndarray:
        path = self.cache / f"{name}.npy" if self.cache else None
        if path is not None and path.is_file():
            return np.load(path)
        windows = make()
        length = round(WINDOW_SECONDS * SAMPLE_RATE)
        out = np.zeros((len(windows), embedding_count(length), 96), np.float32)
        start = time.perf_counter()
        for i in range(0, len(windows), 16):
            out[i:i + 16] = self.embedding(np.stack(windows[i:i + 16]))
        took = time.perf_counter() - start
        self.seconds += took
        self.audio_seconds += len(windows) * WINDOW_SECONDS
        self.windows += len(windows)
        log(f"{name}: {len(windows)} windows embedded in {took:.1f} s "
            f"({1000 * took / max(1, len(windows)):.1f} ms per window)")
        if path is not None:
            np.save(path, out)
        return out


def train_head(x: np.ndarray, y: np.ndarray, labels: list[str], hidden: int, epochs: int,
               seed: int, l2: float = 1e-4, lr: float = 1e-3, batch: int = 128) -> tuple[Head, dict]:
    """A one-hidden-layer MLP (softmax, class-balanced loss, Adam) on flattened embeddings;
    10% held out for choosing the epoch."""
    rng = np.random.default_rng(seed)
    n, k = len(x), len(labels)
    flat = x.reshape(n, -1).astype(np.float32)
    order = rng.permutation(n)
    held = order[: n // 10]
    fit = order[n // 10:]
    mean = flat[fit].mean(axis=0)
    scale = flat[fit].std(axis=0) + 1e-3
    z = (flat - mean) / scale
    counts = np.bincount(y[fit], minlength=k).astype(np.float64)
    class_w = (counts.sum() / (k * np.maximum(counts, 1))).astype(np.float32)
    d = z.shape[1]
    params = [rng.normal(0, np.sqrt(2 / d), (d, hidden)).astype(np.float32), np.zeros(hidden, np.float32),
              rng.normal(0, np.sqrt(1 / hidden), (hidden, k)).astype(np.float32), np.zeros(k, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0

    def forward(xb, drop=None):
        h = np.maximum(xb @ params[0] + params[1], 0)
        if drop is not None:
            h = h * drop
        logits = h @ params[2] + params[3]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(axis=1, keepdims=True)

    def balanced_accuracy(idx):
        _, p = forward(z[idx])
        pred = p.argmax(axis=1)
        return float(np.mean([np.mean(pred[y[idx] == c] == c) for c in range(k) if np.any(y[idx] == c)]))

    best = (-1.0, None, 0)
    for epoch in range(epochs):
        rng.shuffle(fit)
        for i in range(0, len(fit), batch):
            idx = fit[i:i + batch]
            xb, yb = z[idx], y[idx]
            # Input noise and dropout: the head has ~55k weights for ~10k windows.
            xb = xb + rng.normal(0, 0.3, xb.shape).astype(np.float32)
            drop = (rng.random((len(idx), hidden)) > 0.3).astype(np.float32) / 0.7
            h, p = forward(xb, drop)
            w = class_w[yb][:, None]
            g = p.copy()
            g[np.arange(len(yb)), yb] -= 1
            g *= w / len(yb)
            grads = [None, None, h.T @ g, g.sum(axis=0)]
            gh = (g @ params[2].T) * (h > 0)
            grads[0] = xb.T @ gh + l2 * params[0]
            grads[1] = gh.sum(axis=0)
            grads[2] += l2 * params[2]
            step += 1
            for j, (p_, g_) in enumerate(zip(params, grads)):
                m[j] = 0.9 * m[j] + 0.1 * g_
                v[j] = 0.999 * v[j] + 0.001 * g_ ** 2
                p_ -= lr * (m[j] / (1 - 0.9 ** step)) / (np.sqrt(v[j] / (1 - 0.999 ** step)) + 1e-8)
        acc = balanced_accuracy(held)
        if acc > best[0]:
            best = (acc, [p.copy() for p in params], epoch + 1)
    acc, params, epoch = best
    head = Head(labels, x.shape[1], mean.astype(np.float32), scale.astype(np.float32),
                [params[0], params[2]], [params[1], params[3]], WINDOW_SECONDS)
    return head, {"held_out_balanced_accuracy": acc, "epoch": epoch, "windows": n,
                  "per_class": {labels[c]: int((y == c).sum()) for c in range(k)}}


def main(argv: list[str] | None = None) -> int:
    from kws.bundle import load_bundle
    from kws.config import load_config, with_overrides

    parser = argparse.ArgumentParser(prog="python -m kws_train.verifier", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Speech Commands folder")
    parser.add_argument("--model", required=True, help="bundle to write verifier.npz into (also the first "
                        "stage for --mine)")
    parser.add_argument("--negatives", action="append", default=[], help="folder of negative audio "
                        "(its training speakers are used)")
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--hard-negatives", action="append", default=[], help="folder of mined windows")
    parser.add_argument("--mine", action="append", default=[], help="labelled stream of TRAINING audio to "
                        "mine first-stage candidates from")
    parser.add_argument("--mine-threshold", type=float, default=0.5)
    parser.add_argument("--per-word", type=int, default=900, help="positives per word at most")
    parser.add_argument("--out", help="bundle folder to write verifier.npz into (default: --model)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", help="folder keeping each source's embeddings")
    parser.add_argument("--config")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    bundle = load_bundle(args.model, config)
    config = with_overrides(config, {"words": bundle.words})
    labels = list(bundle.words) + [OTHER]
    rng = np.random.default_rng(args.seed)
    length = round(WINDOW_SECONDS * SAMPLE_RATE)
    noises, _ = load_noise(args.data, SAMPLE_RATE)
    embed = Embedder(Path(args.cache) if args.cache else None, args.threads)
    tag = lambda *parts: hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:10]  # noqa: E731

    clips = list_clips(args.data, bundle.words, "training")
    by_label: dict[str, list[Path]] = {}
    for path, target in zip(clips.paths, clips.targets):
        by_label.setdefault(clips.labels[target], []).append(path)
    xs, ys = [], []
    started = time.perf_counter()
    for label in bundle.words + [UNKNOWN]:
        paths = by_label.get(label, [])
        if len(paths) > args.per_word:
            paths = [paths[i] for i in sorted(rng.choice(len(paths), args.per_word, replace=False))]
        seed = int(rng.integers(1 << 31))
        make = lambda paths=paths, seed=seed: [  # noqa: E731
            place_word(read_audio(p, SAMPLE_RATE), length, np.random.default_rng([seed, i]), noises)
            for i, p in enumerate(paths)]
        e = embed(f"clips-{label}-{tag(args.data, [str(p) for p in paths], seed, END_SPREAD, SNR_DB)}", make)
        xs.append(e)
        ys.append(np.full(len(e), labels.index(label if label != UNKNOWN else OTHER)))
    for folder in args.negatives:
        files = negative_files(folder, "training", args.holdout)
        seed = int(rng.integers(1 << 31))
        make = lambda files=files, seed=seed: [  # noqa: E731
            w for i, f in enumerate(files)
            for w in speech_windows(read_audio(f, SAMPLE_RATE), length, np.random.default_rng([seed, i]), noises)]
        xs.append(embed(f"speech-{tag(folder, [str(f) for f in files], seed, SPEECH_HOP)}", make))
    seed = int(rng.integers(1 << 31))
    noise_rng = np.random.default_rng(seed)
    xs.append(embed(f"noise-{tag(args.data, seed, NOISE_WINDOWS)}", lambda: [
        _noise_segment(noises, length, noise_rng) * 10 ** noise_rng.uniform(-3.5, -1)
        for _ in range(NOISE_WINDOWS)]))
    for folder in args.hard_negatives:
        files = audio_files(folder)
        xs.append(embed(f"hard-{tag(folder, [str(f) for f in files])}", lambda files=files: [
            last_window(read_audio(f, SAMPLE_RATE), length) for f in files]))
    for stream in args.mine:
        xs.append(embed(f"mined-{tag(str(Path(args.model).resolve()), stream, args.mine_threshold)}",
                        lambda stream=stream: mined_windows(args.model, config, stream,
                                                            args.mine_threshold, length)))
    while len(ys) < len(xs):
        ys.append(np.full(len(xs[len(ys)]), labels.index(OTHER)))
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    log(f"data ready in {time.perf_counter() - started:.0f} s: {len(x)} windows")
    if embed.windows:
        log(f"embedding cost: {1000 * embed.seconds / embed.windows:.1f} ms per {WINDOW_SECONDS} s window, "
            f"{1000 * embed.seconds / embed.audio_seconds:.1f} ms per second of audio "
            f"({args.threads} thread(s))")
    t0 = time.perf_counter()
    head, info = train_head(x, y, labels, args.hidden, args.epochs, args.seed)
    log(f"head trained in {time.perf_counter() - t0:.1f} s: held-out balanced accuracy "
        f"{info['held_out_balanced_accuracy']:.3f} (epoch {info['epoch']})")
    out = Path(args.out or args.model) / HEAD_FILE
    head.save(out)
    print(json.dumps({"head": str(out), **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
