"""Load benchmark of ``kws serve``: how many real-time client streams one core sustains, and
the detection delay under that load.

    python studies/serve_bench.py --wav runs/serve_bench/commands_testing.wav

A benchmark, not part of kws: it is not installed, and runs as a script from the repository
root (the wav: ``kws make-stream --data DIR --split testing --minutes 2 --out ...``).

The server is the real command (``kws serve`` on a free localhost port) in its own process,
pinned to one CPU; the clients run in this process, on the other CPUs, one asyncio task and
one connection each, and stream the file as a satellite's microphone delivers it: a chunk of
``--chunk-ms`` when its last sample would have been recorded, each client from another offset
and with its chunks staggered against the others'. For each number of streams the figures
are taken over ``--seconds`` of streaming:

- the server's CPU time per second of wall time (its share of its core, from /proc), and per
  stream per second of audio;
- the detection delay: from sending the chunk that completes a detection's audio to receiving
  its ``Detection``: what the server adds (queueing, processing, the loopback), not the
  detector's own latency, which ``kws bench`` measures;
- how late the clients sent their chunks (when they lag, the clients, not the server, were
  the limit) and the server's resident memory after the level.

A level is sustained when the server used under ``--max-cpu`` of its core and the 95th
percentile of the delay stayed under ``--max-delay-ms``; levels rise until one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from kws.eval.bench import THREAD_ENV, stats_ms

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def waited_seconds(pid: int) -> float:
    """Time the server's main thread (where all its work runs) spent ready to run while its
    core ran something else: on a shared machine, what other jobs took from it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else math.nan


async def start_server(models: list[str], cpu: int) -> tuple[asyncio.subprocess.Process, int]:
    """``kws serve`` on a free port, pinned to ``cpu`` with one thread per library."""
    args = [a for m in models for a in ("--model", m)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kws", "serve", "--uri", "tcp://127.0.0.1:0", *args,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **{name: "1" for name in THREAD_ENV}},
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    lines = []
    while b"serving on" not in (line := await asyncio.wait_for(proc.stderr.readline(), 60)):
        if not line:
            raise SystemExit("kws serve did not start:\n" + b"".join(lines).decode())
        lines.append(line)
    return proc, int(line.split(b"tcp://127.0.0.1:")[1].split()[0])


async def drain(stream: asyncio.StreamReader) -> None:
    """Read the server's log as it comes (a full pipe would stall it)."""
    while await stream.readline():
        pass


def framed(audio: np.ndarray, chunk: int) -> list[bytes]:
    """``audio`` (int16, 16 kHz) as AudioChunk events framed by wyoming, once: the clients
    send these bytes, so that 200 of them fit in one Python process on a shared core."""
    from wyoming.audio import AudioChunk
    from wyoming.event import write_event

    frames = []
    for start in range(0, len(audio) - chunk + 1, chunk):
        out = io.BytesIO()
        write_event(AudioChunk(16000, 2, 1, audio[start:start + chunk].tobytes()).event(), out)
        frames.append(out.getvalue())
    return frames


def event_bytes(event) -> bytes:
    from wyoming.event import write_event

    out = io.BytesIO()
    write_event(event, out)
    return out.getvalue()


async def level(pid: int, port: int, frames: list[bytes], streams: int, chunk_seconds: float,
                seconds: float) -> dict:
    """``streams`` real-time clients at once for ``seconds``; the server's figures over that time.

    One task sends every client's chunks, each when a microphone would have delivered it
    (client ``i`` from frame ``offset[i]`` on, staggered by ``i / streams`` of a chunk); one
    task per client reads its events and times each ``Detection`` from the sending of the chunk
    that completed its audio."""
    from wyoming.audio import AudioStart, AudioStop
    from wyoming.event import async_read_event
    from wyoming.ping import Ping, Pong
    from wyoming.wake import Detection

    count = int(seconds / chunk_seconds)
    offsets = np.random.default_rng(streams).integers(0, len(frames), streams)
    sent = np.full((streams, count), np.nan)
    delays: list[float] = []
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(streams)]

    async def receive(i: int, reader: asyncio.StreamReader) -> None:
        while not Pong.is_type((event := await async_read_event(reader)).type):
            if Detection.is_type(event.type):
                k = (round(Detection.from_event(event).timestamp * 16) - 1) // round(chunk_seconds * 16000)
                delays.append(time.monotonic() - sent[i, min(k, count - 1)])

    readers = [asyncio.create_task(receive(i, r)) for i, (r, _) in enumerate(connections)]
    for _, writer in connections:
        writer.write(event_bytes(AudioStart(16000, 2, 1).event()))
    begin = time.monotonic() + 0.2
    due = begin + chunk_seconds * (1 + np.arange(count)[None, :] + np.arange(streams)[:, None] / streams)
    order = np.argsort(due, axis=None)
    cpu0, waited0, wall0, lag = cpu_seconds(pid), waited_seconds(pid), time.monotonic(), 0.0
    for flat in order:
        i, k = divmod(int(flat), count)
        now = time.monotonic()
        if due[i, k] > now:
            await asyncio.sleep(due[i, k] - now)
            now = time.monotonic()
        lag = max(lag, now - due[i, k])
        sent[i, k] = now
        connections[i][1].write(frames[(offsets[i] + k) % len(frames)])
    for _, writer in connections:
        writer.write(event_bytes(AudioStop().event()) + event_bytes(Ping().event()))
    await asyncio.gather(*readers)
    wall, cpu, waited = time.monotonic() - wall0, cpu_seconds(pid) - cpu0, waited_seconds(pid) - waited0
    for _, writer in connections:
        writer.close()
    return {"streams": streams, "cpu_share": cpu / wall, "waited_share": waited / wall,
            "cpu_ms_per_stream_second": 1000 * cpu / (streams * seconds),
            "detections": len(delays),
            "delay_ms": {key: math.nan for key in ("p50", "p95", "max")} | stats_ms(delays),
            "client_lag_ms": 1000 * lag, "server_rss_mb": rss_mb(pid)}


async def bench(args: argparse.Namespace) -> list[dict]:
    from kws.audio.files import read_audio

    audio = (np.clip(read_audio(args.wav, 16000), -1, 1) * 32767).astype(np.int16)
    if len(audio) < args.seconds * 16000:
        raise SystemExit(f"{args.wav}: shorter than --seconds {args.seconds:g}")
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[-1]
    if len(cpus) > 1:  # the clients keep off the server's core
        os.sched_setaffinity(0, set(cpus[:-1]))
    proc, port = await start_server(args.model or [], server_cpu)
    log = asyncio.create_task(drain(proc.stderr))
    frames = framed(audio, round(args.chunk_ms * 16))
    rows = []
    try:
        print(f"server pid {proc.pid} on CPU {server_cpu}, clients on {cpus[:-1] or cpus}; rss idle "
              f"{rss_mb(proc.pid):.0f} MB", file=sys.stderr)
        for streams in args.streams:
            row = await level(proc.pid, port, frames, streams, args.chunk_ms / 1000, args.seconds)
            # No detection in a level (one short stream) leaves its delay undefined, not failed.
            row["sustained"] = row["cpu_share"] < args.max_cpu and not row["delay_ms"]["p95"] >= args.max_delay_ms
            rows.append(row)
            print(format_row(row), file=sys.stderr, flush=True)
            if not row["sustained"]:
                break
        print(f"server rss with every connection closed: {rss_mb(proc.pid):.0f} MB", file=sys.stderr)
    finally:
        proc.terminate()
        await proc.wait()
        await log
    return rows


def format_row(row: dict) -> str:
    d = row["delay_ms"]
    return (f"{row['streams']:4d} streams  server CPU {100 * row['cpu_share']:5.1f}% of a core "
            f"(waited for it {100 * row['waited_share']:4.1f}%)  "
            f"{row['cpu_ms_per_stream_second']:5.2f} ms per stream-second  delay p50 {d['p50']:6.1f} "
            f"p95 {d['p95']:6.1f} max {d['max']:6.1f} ms ({row['detections']} detections)  client lag "
            f"{row['client_lag_ms']:5.1f} ms  rss {row['server_rss_mb']:.0f} MB"
            f"{'' if row['sustained'] else '  NOT SUSTAINED'}")


def summary(rows: list[dict]) -> str:
    kept = [r for r in rows if r["sustained"]]
    if not kept:
        return "no level sustained"
    best = kept[-1]
    per_stream = best["cpu_ms_per_stream_second"]  # the fixed cost of the loop spread the widest
    return (f"one core sustained {best['streams']} real-time streams (CPU {100 * best['cpu_share']:.0f}%, "
            f"delay p50 {best['delay_ms']['p50']:.1f} ms, p95 {best['delay_ms']['p95']:.1f} ms); at "
            f"{per_stream:.2f} ms of CPU per stream-second, a core of its own would serve about "
            f"{1000 / per_stream:.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python studies/serve_bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="audio the clients stream (looped), e.g. from `kws make-stream`")
    parser.add_argument("--model", action="append", metavar="DIR", help="as `kws serve --model`")
    parser.add_argument("--streams", default="1,8,16,32,64,96,128,160,192,256",
                        type=lambda s: [int(n) for n in s.split(",")], help="levels (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming per level (default: %(default)s)")
    parser.add_argument("--chunk-ms", type=float, default=64.0,
                        help="audio per chunk (default: %(default)s, wyoming-satellite's 1024 samples)")
    parser.add_argument("--max-cpu", type=float, default=0.9, help="sustained: server CPU share under this")
    parser.add_argument("--max-delay-ms", type=float, default=100.0, help="sustained: p95 delay under this")
    parser.add_argument("--json", action="store_true", help="print the levels as one JSON object")
    args = parser.parse_args(argv)
    rows = asyncio.run(bench(args))
    if args.json:
        from kws.cli import json_line

        print(json_line({"levels": rows, "summary": summary(rows)}))
    else:
        print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
