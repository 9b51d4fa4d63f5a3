"""Long labelled test streams, as TensorFlow's ``generate_streaming_test_wav`` makes them.

Clips from a dataset split are laid out one after another with random gaps, over a continuous
background-noise bed mixed at a given SNR. The labels give, for every clip, the word and the
exact start and end of its *speech* (found by energy inside the one-second clip), which is what
detection latency is measured from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kws.config import StreamConfig
from kws.errors import KwsError

FRAME_MS = 10


@dataclass(frozen=True)
class Label:
    word: str
    start: float  # seconds: first and last sample of speech
    end: float
    source: str = ""  # the clip it came from


def speech_bounds(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """``(start, end)`` samples of the speech in a clip, by 10-ms frame energy.

    A frame is speech when its energy, in dB, is above both the midpoint between the noise
    floor (10th percentile frame) and the loudest frame, and 30 dB below the loudest: the
    first rule copes with recorded background noise, the second with near-digital silence,
    where clicks and breaths 40-60 dB down would otherwise count as speech.
    """
    size = sample_rate * FRAME_MS // 1000
    n = max(1, len(clip) // size)
    frames = np.resize(clip, n * size).reshape(n, size) if len(clip) >= size else clip[None]
    db = 10 * np.log10(np.maximum((frames.astype(np.float64) ** 2).mean(axis=1), 1e-12))
    floor, peak = np.percentile(db, 10), db.max()
    loud = np.flatnonzero(db >= max((floor + peak) / 2, peak - 30))
    return int(loud[0] * size), int(min(len(clip), (loud[-1] + 1) * size))


def build_stream(clips: list[tuple[str, str, np.ndarray]], noises: list[np.ndarray],
                 params: StreamConfig, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[Label]]:
    """Lay ``(word, source, samples)`` clips out at random gaps over noise at ``params.snr_db``.

    The stream starts and ends with a gap, so the first word comes after the detector's first
    full window and the last one has time to be detected.
    """
    low, high = params.gap_seconds
    gaps = [round(rng.uniform(low, high) * sample_rate) for _ in range(len(clips) + 1)]
    audio = np.zeros(sum(gaps) + sum(len(c[2]) for c in clips), dtype=np.float32)
    labels, t = [], 0
    for gap, (word, source, samples) in zip(gaps, clips):
        t += gap
        audio[t:t + len(samples)] = samples
        start, end = speech_bounds(samples, sample_rate)
        labels.append(Label(word, (t + start) / sample_rate, (t + end) / sample_rate, source))
        t += len(samples)
    if noises and np.isfinite(params.snr_db):
        audio += noise_bed(noises, len(audio), rng) * (_speech_rms(audio, labels, sample_rate)
                                                        / 10 ** (params.snr_db / 20))
    peak = np.abs(audio).max()
    return (audio / peak * 0.99 if peak > 0.99 else audio), labels


def noise_bed(noises: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise of ``length`` samples: random stretches of random recordings, end to end, each
    recording scaled to unit RMS as a whole (so its own quiet and loud parts stay as they are).

    Stretches start in the first half of a recording, so joins are at least half a
    recording apart.
    """
    pieces, total = [], 0
    while total < length:
        noise = noises[rng.integers(len(noises))]
        start = int(rng.integers(max(1, len(noise) // 2)))
        piece = noise[start:start + length - total]
        pieces.append(piece / max(float(np.sqrt(np.mean(noise.astype(np.float64) ** 2))), 1e-9))
        total += len(piece)
    return np.concatenate(pieces).astype(np.float32)


def _speech_rms(audio: np.ndarray, labels: list[Label], sample_rate: int) -> float:
    speech = np.concatenate([audio[round(lab.start * sample_rate):round(lab.end * sample_rate)]
                             for lab in labels]) if labels else np.zeros(1)
    return float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))


def pick_clips(by_word: dict[str, list[Path]], words: list[str], unknown: list[str],
               seconds: float, params: StreamConfig, rng: np.random.Generator,
               read: Callable[[Path], np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """Enough clips to fill about ``seconds``: command words in turn drawn evenly, a share
    ``params.unknown_fraction`` of unknown words; no clip twice until its word runs out."""
    words = [w for w in words if by_word.get(w)]
    unknown = [w for w in unknown if by_word.get(w)]
    if not words:
        raise KwsError("no clips of any command word in that split")
    pools: dict[str, list[Path]] = {}
    per_clip = 1 + sum(params.gap_seconds) / 2
    out = []
    for _ in range(max(1, round(seconds / per_clip))):
        is_unknown = unknown and rng.random() < params.unknown_fraction
        word = str(rng.choice(unknown if is_unknown else words))
        if not pools.get(word):
            pools[word] = list(rng.permutation(by_word[word]))
        path = pools[word].pop()
        out.append((word, str(path), read(path)))
    return out


NEGATIVE = "_negative_"  # label of audio in which no command is said


def pick_negatives(paths: list[Path], seconds: float | None, sample_rate: int,
                   rng: np.random.Generator, read: Callable[[Path], np.ndarray],
                   gap_seconds: float = 0.0) -> list[tuple[str, str, np.ndarray]]:
    """Files of negative audio in random order (``None``: all of them), as much as makes a
    stream of about ``seconds`` with a gap of ``gap_seconds`` around each (``build_stream``):
    the last file is cut where the time runs out."""
    out, total = [], 0
    for index in rng.permutation(len(paths)):
        room = None if seconds is None else round((seconds - (len(out) + 2) * gap_seconds) * sample_rate) - total
        if room is not None and room <= 0 and out:
            break
        samples = read(paths[index])[:None if room is None else max(room, sample_rate)]  # a second at least
        out.append((NEGATIVE, str(paths[index]), samples))
        total += len(samples)
    return out


def labels_path(wav: str | Path, labels: str | Path | None = None) -> Path:
    """The labels CSV of a stream: given, or beside the WAV with the suffix ``.csv``."""
    return Path(labels) if labels else Path(wav).with_suffix(".csv")


LABELS_HEADER = "word,start,end,source"


def is_labels_file(path: Path) -> bool:
    """Whether ``path`` is a labels CSV as ``write_labels`` writes it (its header first)."""
    with open(path, newline="", errors="replace") as f:
        return f.readline().rstrip("\r\n") == LABELS_HEADER


def write_labels(path: str | Path, labels: list[Label]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(LABELS_HEADER.split(","))
        out.writerows([lab.word, f"{lab.start:.4f}", f"{lab.end:.4f}", lab.source] for lab in labels)


def read_labels(path: str | Path) -> list[Label]:
    """Labels from a CSV with columns ``word,start,end`` (``source`` optional), header first."""
    path = Path(path)
    if not path.is_file():
        raise KwsError(f"{path}: no such labels file")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        labels = [Label(r["word"], float(r["start"]), float(r["end"]), r.get("source") or "")
                  for r in rows]
    except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as err:
        raise KwsError(f"{path}: not a labels CSV with columns word,start,end ({err})"
                       .split("\n")[0]) from None
    if any(lab.end < lab.start for lab in labels):
        raise KwsError(f"{path}: a label ends before it starts")
    return sorted(labels, key=lambda lab: lab.start)
