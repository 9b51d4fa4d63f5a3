"""Ring buffer: order kept across wrap-around, overflow counted, no allocation per write."""

import subprocess
import sys
import threading

import numpy as np

from kws.audio.ring import RingBuffer


def test_wraps_and_keeps_order():
    ring = RingBuffer(10)
    out = np.zeros(10, np.float32)
    data = np.arange(100, dtype=np.float32)
    got = []
    for i in range(0, 100, 7):
        ring.write(data[i:i + 7])
        n = ring.read_into(out[:4])
        got.extend(out[:n])
        n = ring.read_into(out)
        got.extend(out[:n])
    assert np.array_equal(got, data) and ring.lost == 0


def test_overflow_drops_newest_and_counts():
    ring = RingBuffer(8)
    assert ring.write(np.arange(5, dtype=np.float32)) == 5
    assert ring.write(np.arange(5, 10, dtype=np.float32)) == 3
    assert ring.lost == 2 and len(ring) == 8
    out = np.zeros(8, np.float32)
    ring.read_into(out)
    assert np.array_equal(out, np.arange(8))


# In a process of its own: tracemalloc counts every thread's allocations, and pytest's (or
# another test's leftover threads) would be counted against the ring.
NO_ALLOCATION = """
import tracemalloc
import numpy as np
from kws.audio.ring import RingBuffer
ring = RingBuffer(40_000)
block = np.ones(1600, np.float32)  # 6.4 kB: any copy of it would show
out = np.zeros(40_000, np.float32)
ring.write(block)  # warm up
tracemalloc.start()
for _ in range(100):
    for _ in range(20):  # wraps around the buffer every 25 writes
        ring.write(block)
    ring.read_into(out)
print(tracemalloc.get_traced_memory()[1])
"""


def test_write_does_not_allocate_buffers():
    peak = int(subprocess.run([sys.executable, "-c", NO_ALLOCATION], capture_output=True, text=True,
                              check=True).stdout)
    assert peak < 1000  # only the counters' int objects


def test_threaded_producer_consumer_loses_nothing():
    ring = RingBuffer(1024)
    data = np.arange(200_000, dtype=np.float32)
    received = []

    def produce():
        for i in range(0, len(data), 160):
            while ring.capacity - len(ring) < 160:  # a real callback never waits; this test must not drop
                pass
            ring.write(data[i:i + 160])

    thread = threading.Thread(target=produce)
    thread.start()
    out = np.zeros(1024, np.float32)
    while len(received) < len(data):
        ring.wait(0.1)
        n = ring.read_into(out)
        received.extend(out[:n])
    thread.join()
    assert np.array_equal(received, data) and ring.lost == 0


def test_wait_for_a_hop_wakes_once_enough_samples_are_waiting():
    ring = RingBuffer(4096)
    assert not ring.wait(0.01, at_least=320)  # nothing written: times out
    ring.write(np.zeros(160, np.float32))
    assert not ring.wait(0.01, at_least=320)  # half a hop is not enough
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(ring.wait(5.0, at_least=320)))
    waiter.start()
    ring.write(np.zeros(160, np.float32))  # the second block completes the hop
    waiter.join(2.0)
    assert woke == [True] and len(ring) == 320
