"""A file dropped on the page: its detections as ``kws replay`` finds them, over its waveform.

The same path as ``kws replay FILE --model M``: ``kws.audio.files.read_blocks`` at the
config's block size, ``Spotter.replay(..., pad=True)`` (the file ends with a window of
silence), with the thresholds the page's sliders hold. The waveform is drawn from the same
blocks as they pass (the peaks of ``PEAKS`` equal spans), so the file is read once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from kws.api import Spotter
from kws.audio.files import read_blocks
from kws.serve import Model

PEAKS = 1000  # waveform columns the page draws


def replay_file(path: Path, model: Model, thresholds: dict[str, float] | None = None) -> dict:
    """``{"seconds", "detections": [{time, word, score}], "near_misses", "peaks": [[low, high]]}``."""
    spotter = Spotter(config=model.config)
    if thresholds:
        spotter.set_thresholds(thresholds)
    rate, frames, blocks = read_blocks(path, model.config.audio.block_ms)
    peaks = Peaks(frames)
    detections, near_misses = [], []
    for update in spotter.replay(peaks.watch(blocks), rate, pad=True):
        detections += [{"time": round(d.time, 3), "word": d.word, "score": round(d.score, 4)}
                       for d in update.detections]
        near_misses += [{"time": round(m.time, 3), "word": m.word, "score": round(m.score, 4),
                         "threshold": m.threshold} for m in update.near_misses]
    return {"seconds": round(frames / rate, 3), "rate": rate, "thresholds": spotter.thresholds,
            "detections": detections, "near_misses": near_misses, "peaks": peaks.values()}


class Peaks:
    """Lowest and highest sample of each of ``PEAKS`` equal spans of a stream of ``frames``."""

    def __init__(self, frames: int):
        self.span = max(1, math.ceil(frames / PEAKS))
        self.low = np.full(math.ceil(max(frames, 1) / self.span), np.inf, np.float32)
        self.high = -self.low
        self.seen = 0

    def watch(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            if len(block):
                first = self.seen // self.span
                starts = np.concatenate([[0], np.arange((first + 1) * self.span, self.seen + len(block),
                                                        self.span) - self.seen])
                columns = first + np.arange(len(starts))
                keep = columns < len(self.low)  # a file longer than its header said: drawn to its end only
                columns = columns[keep]
                self.low[columns] = np.minimum(self.low[columns], np.minimum.reduceat(block, starts)[keep])
                self.high[columns] = np.maximum(self.high[columns], np.maximum.reduceat(block, starts)[keep])
                self.seen += len(block)
            yield block

    def values(self) -> list[list[float]]:
        low, high = np.minimum(self.low, 0), np.maximum(self.high, 0)  # spans never reached: flat
        return np.round(np.stack([low, high], axis=1), 3).tolist()
