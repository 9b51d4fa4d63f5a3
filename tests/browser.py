"""The page of `kws serve --http` in a real browser: the command in a subprocess, and Debian's
Chromium driven headless by Playwright for Python (``executable_path``: Playwright downloads no
browser), its microphone Chromium's fake capture device playing a WAV file in a loop.

Used by tests/test_web_browser.py and scripts/web_page.py (the README's screenshot, the
20-tab memory figure).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

CHROMIUM = ("chromium", "chromium-browser")


def chromium() -> str | None:
    """The system Chromium's path, or None."""
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


@contextlib.contextmanager
def served_page(*args: str, cwd: str | Path | None = None,
                timeout: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """``kws serve --http 127.0.0.1:0 ARGS`` until the block ends; yields the page's URL (the
    line it logs once listening) and the process."""
    server = subprocess.Popen([sys.executable, "-m", "kws", "serve", "--http", "127.0.0.1:0", *args],
                              stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        said = []
        while "page at " not in (line := server.stderr.readline()):
            if not line:
                raise AssertionError(f"kws serve --http exited {server.wait(timeout)}:\n{''.join(said)}")
            said.append(line)
        yield line.split("page at ")[1].split()[0], server
    finally:
        server.terminate()
        server.wait(timeout)


@contextlib.contextmanager
def browser(playwright, audio: Path | None = None):
    """Headless Chromium; with ``audio`` (a WAV), the microphone a page asks for plays it, looped,
    and is granted without asking."""
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio}")
    launched = playwright.chromium.launch(executable_path=chromium(), args=args)
    try:
        yield launched
    finally:
        launched.close()


def hits(page, selector: str = "#log li.hit") -> list[tuple[str, float]]:
    """The detections a log of the page shows, oldest first: ``(word, stream seconds)``."""
    found = page.eval_on_selector_all(selector, "items => items.map(i => [i.dataset.word, Number(i.dataset.time)])")
    return [(word, time) for word, time in reversed(found)]
