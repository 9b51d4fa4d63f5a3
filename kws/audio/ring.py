"""A fixed-size ring buffer between one producer (the audio callback) and one consumer."""

from __future__ import annotations

import threading
import time

import numpy as np


class RingBuffer:
    """Single-producer, single-consumer float32 ring buffer with fixed memory.

    ``write`` never blocks and never allocates: it is safe to call from a sound-card
    callback. When the consumer falls behind and the buffer is full, the samples that do
    not fit are dropped and counted in ``lost``: the audio callback must never wait, and
    keeping the older samples keeps what the consumer reads contiguous.

    The two sides only ever advance their own counter (``_written`` by the producer,
    ``_read`` by the consumer), so no lock is needed on the data path; an Event lets the
    consumer sleep until data arrives.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._data = np.zeros(capacity, dtype=np.float32)
        self._written = 0  # total samples ever written (producer-owned)
        self._read = 0  # total samples ever read (consumer-owned)
        self.lost = 0  # samples dropped because the buffer was full (producer-owned)
        self._ready = threading.Event()

    def __len__(self) -> int:
        """Samples waiting to be read."""
        return self._written - self._read

    def write(self, samples: np.ndarray) -> int:
        """Copy ``samples`` (1-D float32) in; return how many were stored."""
        free = self.capacity - (self._written - self._read)
        n = min(len(samples), free)
        self.lost += len(samples) - n
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = samples[:first]
        self._data[:n - first] = samples[first:n]
        self._written += n
        if n and not self._ready.is_set():  # set() takes a lock; the consumer re-checks after clearing
            self._ready.set()
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Move up to ``len(out)`` waiting samples into ``out``; return how many."""
        n = min(len(out), self._written - self._read)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start:start + first]
        out[first:n] = self._data[:n - first]
        self._read += n
        if self._written == self._read:
            self._ready.clear()
            # A write may have landed between the check and the clear; don't sleep through it.
            if self._written != self._read:
                self._ready.set()
        return n

    def wait(self, timeout: float | None = None, at_least: int = 1) -> bool:
        """Block until ``at_least`` samples are waiting (or ``timeout`` seconds pass); return
        whether they are. Waking for a whole hop, not every sound-card block, halves the
        consumer's calls (and its per-call cost) at 10-ms blocks and 20-ms hops."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self) < at_least:
            self._ready.clear()
            if len(self) >= at_least:  # a write landed before the clear: don't sleep through it
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._ready.wait(left)
        return True
