"""The page of `kws serve --http`, measured and pictured (not a test: nothing here is timed
against a limit).

    .venv/bin/python scripts/web_page.py screenshot [docs/page.png]
        the README's picture: headless Chromium, its microphone playing the committed spoken
        stream, a dozen seconds heard, the same file dropped on the page; the shipped model
    .venv/bin/python scripts/web_page.py tabs [N] [--model DIR]
        N live views at once (default 20, the issue's "20 tabs"), each a WebSocket sending the
        spoken stream at 48 kHz in real time as a browser's AudioWorklet does, each with its own
        thresholds (one word off, in turn): checks each got the detections of one view alone
        without its muted word, and reports the server's memory (RSS, peak) and CPU

Both run `kws serve --http` as a user would (tests/browser.py starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import browser, served_page  # noqa: E402

SPOKEN = ROOT / "tests" / "data" / "spoken.flac"
RATE = 48000  # what a browser's AudioContext runs at
BLOCK = 2048  # samples per message, as the page's AudioWorklet sends them


def spoken_wav(folder: Path) -> Path:
    """The committed spoken stream as a 16-bit WAV (what Chromium's fake microphone plays)."""
    path = folder / "spoken.wav"
    sf.write(path, sf.read(SPOKEN, dtype="int16")[0], 16000, subtype="PCM_16")
    return path


def screenshot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        wav = spoken_wav(Path(tmp))
        with served_page("--models", str(Path(tmp) / "models")) as (url, _), sync_playwright() as playwright, \
                browser(playwright, wav) as chrome:
            page = chrome.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.click("#mic")
            page.wait_for_function("() => Number(document.getElementById('heard').dataset.time) > 12",
                                   timeout=60_000)
            page.set_input_files("#pick", str(wav))
            page.wait_for_function("() => document.getElementById('file-status').textContent.includes('detection')",
                                   timeout=60_000)
            page.fill("#word", "lights")
            page.screenshot(path=str(out))
    print(f"wrote {out}")


async def live_view(base: str, audio: np.ndarray, thresholds: dict | None) -> list[str]:
    """One view: start, thresholds, the audio in real time, stop; the words detected."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/ws") as ws:
        await ws.send_json({"type": "start", "rate": RATE, "format": "s16"})
        await ws.receive_json()
        if thresholds:
            await ws.send_json({"type": "thresholds", "thresholds": thresholds})
        words: list[str] = []
        started = time.monotonic()

        async def read():
            while (message := await ws.receive_json())["type"] != "stopped":
                if message["type"] == "detection":
                    words.append(message["word"])

        reader = asyncio.create_task(read())
        for start in range(0, len(audio), BLOCK):
            await asyncio.sleep(max(0.0, started + start / RATE - time.monotonic()))
            await ws.send_bytes(audio[start:start + BLOCK].tobytes())
        await ws.send_json({"type": "stop"})
        await reader
        return words


def tabs(count: int, model: str | None) -> None:
    import psutil

    samples = sf.read(SPOKEN, dtype="float32")[0]
    audio = (np.clip(soxr.resample(np.tile(samples, 2), 16000, RATE), -1, 1) * 32767).astype("<i2")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--models", str(Path(tmp) / "models"), *(["--model", model] if model else [])]
        with served_page(*args) as (url, server):
            base = url.rstrip("/")
            process = psutil.Process(server.pid)
            idle = process.memory_info().rss
            alone = asyncio.run(live_view(base, audio, None))
            words = sorted(set(alone))
            peak, stop = [idle], threading.Event()

            def sample():
                while not stop.wait(0.2):
                    peak.append(process.memory_info().rss)

            watcher = threading.Thread(target=sample)
            watcher.start()
            cpu, wall = process.cpu_times(), time.monotonic()
            muted = [words[i % len(words)] if i % 2 else None for i in range(count)]

            async def all_views():
                return await asyncio.gather(*(live_view(base, audio, {m: 1.0} if m else None) for m in muted))

            found = asyncio.run(all_views())
            used = sum(process.cpu_times()[:2]) - sum(cpu[:2])
            wall = time.monotonic() - wall
            stop.set()
            watcher.join()
    ok = all(got == [w for w in alone if w != m] for got, m in zip(found, muted))
    print(f"{count} live views at once, {len(audio) / RATE:.0f} s of {RATE}-Hz audio each in real time "
          f"(one view alone heard: {' '.join(alone)})")
    print(f"each got its own detections (its muted word left out): {'yes' if ok else 'NO'}")
    if not ok:
        for got, m in zip(found, muted):
            print(f"  muted {m}: {' '.join(got)}")
    print(f"server RSS: {idle / 2**20:.0f} MB at start, {max(peak) / 2**20:.0f} MB at the peak; "
          f"CPU {used / wall:.0%} of one core over {wall:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    shot = sub.add_parser("screenshot")
    shot.add_argument("out", nargs="?", default=str(ROOT / "docs" / "page.png"))
    many = sub.add_parser("tabs")
    many.add_argument("count", nargs="?", type=int, default=20)
    many.add_argument("--model", help="bundle to serve (default: the shipped model)")
    args = parser.parse_args()
    if args.what == "screenshot":
        screenshot(Path(args.out))
    else:
        tabs(args.count, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
