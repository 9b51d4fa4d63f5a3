"""The live view (``kws.view``): in a real terminal (tmux), as a person sees it; plain lines
when the output is not a terminal."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kws.api import Spotter
from kws.audio.files import write_wav
from kws.view import bar, view
from pulse import virtual_mic  # noqa: F401 (a fixture)

DATA = Path(__file__).parent / "data"
DRIVER = """
import sys, kws
from kws.audio.files import read_blocks
from kws.view import view
spotter = kws.Spotter(model=sys.argv[1], config=sys.argv[2], thresholds=0.6)
rate, _, blocks = read_blocks(sys.argv[3], 10)
view(spotter.replay(blocks, rate, realtime=True), refresh_per_second=8)
print("VIEW DONE", flush=True)
import time; time.sleep(60)
"""


def first_words(spoken, tmp_path: Path, count: int = 2) -> tuple[Path, list[str]]:
    audio, labels, _ = spoken
    end = int((labels[count - 1][2] + 1.2) * 16000)
    path = tmp_path / "first.wav"
    write_wav(path, audio[:end], 16000)
    return path, [word for word, _, _ in labels[:count]]


class Tmux:
    def __init__(self, name: str):
        self.socket = name

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "view")


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed (apt-get install tmux)")
    t = Tmux(f"kws-test-{os.getpid()}")
    yield t
    subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True)


@pytest.mark.slow
def test_view_in_a_real_terminal(spoken, tmux, tmp_path):
    wav, words = first_words(spoken, tmp_path)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    command = " ".join(shlex.quote(str(a)) for a in [sys.executable, script, DATA / "tiny_bundle",
                                                     DATA / "tiny.yaml", wav])
    tmux("new-session", "-d", "-s", "view", "-x", "100", "-y", "30",
         f"env TERM=xterm-256color {command}")
    screens, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        screen = tmux.screen()
        screens.append(screen)
        if "VIEW DONE" in screen:
            break
        time.sleep(0.25)
    final = screens[-1]
    assert "VIEW DONE" in final, final
    # Drawn while the file played, redrawn in place: the view changed over time, on one screen
    # (how often the pane is caught mid-drawing depends on the machine's load: at least twice).
    drawing = [s for s in screens if "level" in s]
    assert len(set(drawing)) >= 2, drawing[-1]
    assert all(s.count("last detections") == 1 for s in drawing)
    lines = final.splitlines()
    header = next(line for line in lines if "level" in line)
    assert "dBFS" in header or "silence" in header
    for word in ("yes", "no", "up", "stop"):  # a bar per word, its threshold marked and printed
        row = next(line for line in lines if line.split()[:1] == [word])
        assert "|" in row and row.rstrip().endswith("0.60"), row
    last = next(line for line in lines if line.startswith("last detections:"))
    assert [part.split()[0] for part in last.split(":", 1)[1].split(",")][::-1] == words, last
    assert "\x1b" not in final  # what a person sees, no stray escape codes


def watch(tmux, until, timeout: float = 60) -> list[str]:
    """The pane's screens, every quarter second, until one shows ``until`` (text, or a test of
    the screen)."""
    shows = until if callable(until) else (lambda screen: until in screen)
    screens, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        screens.append(tmux.screen())
        if shows(screens[-1]):
            return screens
        time.sleep(0.25)
    raise AssertionError(f"no {until!r} within {timeout} s:\n{screens[-1] if screens else ''}")


def run_in_tmux(tmux, tmp_path: Path, *argv: str, env: str = "") -> None:
    """``kws ARGV`` in a 100x30 terminal, in ``tmp_path``; then ``EXIT <status>``. The shell
    ignores Ctrl-C, so that only kws gets it (kws sets its own handlers)."""
    command = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "kws", *argv])
    tmux("new-session", "-d", "-s", "view", "-x", "100", "-y", "30", "-c", str(tmp_path),
         f"trap '' INT; env TERM=xterm-256color {env} {command}; echo EXIT $?; sleep 60")


def check_view(screen: str, title: str, words: list[str]) -> None:
    lines = screen.splitlines()
    header = next(line for line in lines if "level" in line and title in line)
    assert "dBFS" in header or "silence" in header, screen
    for word in ("yes", "no", "up", "stop"):
        row = next(line for line in lines if line.split()[:1] == [word])
        assert "|" in row and row.rstrip().endswith("0.60"), row
    last = next(line for line in lines if line.startswith("last detections:"))
    assert [part.split()[0] for part in last.split(":", 1)[1].split(",")][::-1] == words, last
    assert "\x1b" not in screen


@pytest.mark.slow
def test_kws_replay_view_in_a_real_terminal(spoken, tmux, tmp_path):
    wav, words = first_words(spoken, tmp_path)
    run_in_tmux(tmux, tmp_path, "replay", wav.name, "--model", DATA / "tiny_bundle", "--config",
                DATA / "tiny.yaml", "--threshold", "0.6", "--view", "--realtime")
    screens = watch(tmux, "EXIT ")
    final = screens[-1]
    assert "EXIT 0" in final, final
    drawing = [s for s in screens if "last detections" in s]
    assert len(set(drawing)) >= 2 and all(s.count("last detections") == 1 for s in drawing)
    check_view(final, wav.name, words)


@pytest.mark.slow
def test_kws_listen_view_from_the_microphone_and_ctrl_c(virtual_mic, spoken, tmux, tmp_path):
    wav, words = first_words(spoken, tmp_path)
    run_in_tmux(tmux, tmp_path, "listen", "--model", DATA / "tiny_bundle", "--config",
                DATA / "tiny.yaml", "--threshold", "0.6", "--view",
                env=f"PULSE_SERVER={shlex.quote(virtual_mic.env['PULSE_SERVER'])}")
    watch(tmux, "level")  # the view is drawn: the microphone is open
    virtual_mic.play(wav)

    def heard_all(screen: str) -> bool:
        last = [line for line in screen.splitlines() if line.startswith("last detections:")]
        return bool(last) and len(last[0].split(":", 1)[1].split(",")) >= len(words)

    watch(tmux, heard_all, timeout=30)
    tmux("send-keys", "-t", "view", "C-c")  # as a person stops it, once the words are on screen
    final = watch(tmux, "EXIT ", timeout=20)[-1]
    assert "EXIT 0" in final, final
    check_view(final, "kws listen", words)
    assert re.search(rf"kws: stopped after \d+\.\d s: {len(words)} detections, 0 samples lost", final), final


def test_plain_lines_when_not_a_terminal(spoken, tmp_path):
    spotter = Spotter(model=DATA / "tiny_bundle", config=DATA / "tiny.yaml", thresholds=0.6)
    out = io.StringIO()
    state = view([spotter.feed(spoken[0])], out=out)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines if "near miss" not in line] == [w for w, _, _ in spoken[1]]
    assert state.count == len(spoken[1]) and "\x1b" not in out.getvalue()


def test_bar():
    assert bar(0.5, 0.75, width=8) == "████·|··"  # filled up to the | = at the threshold
    assert bar(1.2, width=4) == "████" and bar(-1, width=4) == "····"


@pytest.mark.slow
def test_kws_listen_meter_in_a_real_terminal(virtual_mic, spoken, tmux, tmp_path):
    audio, labels, _ = spoken
    word = labels[0][0]
    # The first word, then quiet noise for seconds: the meter is seen above its floor after it.
    played = audio[:round((labels[0][2] + 1.0) * 16000)]
    noise = 0.003 * np.random.default_rng(0).standard_normal(4 * 16000).astype(np.float32)
    wav = tmp_path / "word.wav"
    write_wav(wav, np.concatenate([played, noise]), 16000)
    run_in_tmux(tmux, tmp_path, "listen", "--meter", "--model", DATA / "tiny_bundle", "--config",
                DATA / "tiny.yaml", "--threshold", "0.6",
                env=f"PULSE_SERVER={shlex.quote(virtual_mic.env['PULSE_SERVER'])}")
    watch(tmux, "listening on")
    virtual_mic.play(wav)

    def detected_and_metered(screen: str) -> bool:
        # The detection's line, and the meter's one line in place below it, above -60 dBFS.
        levels = re.findall(r"level +(-?\d+\.\d) dBFS", screen)
        return bool(re.search(rf"\d\d:\d\d:\d\d\.\d{{3}}  {word}  ", screen)) and len(levels) == 1 \
            and float(levels[0]) > -60

    watch(tmux, detected_and_metered, timeout=30)
    tmux("send-keys", "-t", "view", "C-c")
    final = watch(tmux, "EXIT ", timeout=20)[-1]
    assert "EXIT 0" in final and final.count("dBFS") <= 1, final  # cleared at the end, never a trail
