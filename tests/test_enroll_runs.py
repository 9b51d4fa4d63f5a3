"""``kws enroll`` run for real, three times into the same folder (issue #20): the bundle is
replaced in one step and a run killed half way loses nothing; the same seed gives the same
bundle; the report names only the engines that spoke and is strict JSON; TensorFlow's chatter
stays off the terminal.

One module-scoped fixture does the runs (about half a minute each on ``--budget tiny``,
espeak-ng voices only); each test checks one promise on what they left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kws.bundle import STAGING, load_bundle

pytestmark = [pytest.mark.train, pytest.mark.espeak]

WORD = "lamp"


def _enroll(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "kws", "enroll", WORD, "--out", str(out), "--budget", "tiny",
            "--seed", "0", "--cache", str(cache), "--no-progress", "--threads", "2"]


def _state(out: Path) -> tuple[tuple[str, ...], bytes]:
    """What a reader of ``out`` sees: its listing and its metadata."""
    try:
        return tuple(sorted(p.name for p in out.iterdir())), (out / "metadata.json").read_bytes()
    except OSError:
        return (), b""


def _staging(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}{STAGING}-*"))


class Watch(threading.Thread):
    """Every state of ``out`` seen while a command runs."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.out, self.seen, self.done = out, set(), threading.Event()

    def run(self):
        while not self.done.is_set():
            self.seen.add(_state(self.out))
            time.sleep(0.02)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """First run, a run killed once its new bundle is half built, then a run watched."""
    tmp = tmp_path_factory.mktemp("enroll")
    out, cache = tmp / "lampb", tmp / "cache"
    env = {k: v for k, v in os.environ.items() if k != "KWS_DEBUG"}
    first = subprocess.run(_enroll(out, cache), capture_output=True, text=True, cwd=tmp, env=env, timeout=900)
    assert first.returncode == 0, first.stderr
    before = _state(out)

    killed = subprocess.Popen(_enroll(out, cache), cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not any((s / "metadata.json").exists() for s in _staging(out)) and killed.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    after_kill, left = _state(out), _staging(out)

    watch = Watch(out)
    watch.start()
    last = subprocess.run(_enroll(out, cache), capture_output=True, text=True, cwd=tmp, env=env, timeout=900)
    watch.done.set()
    watch.join()
    assert last.returncode == 0, last.stderr
    return {"out": out, "first": first, "last": last, "before": before, "after_kill": after_kill,
            "left_by_kill": left, "seen": watch.seen, "final": _state(out)}


def test_a_run_killed_half_way_leaves_the_old_bundle_usable(runs):
    assert runs["left_by_kill"], "the run was not killed while it built the new bundle"
    assert runs["after_kill"] == runs["before"]
    assert not _staging(runs["out"])  # the next run removed what the killed one left


def test_the_bundle_is_replaced_in_one_step(runs):
    # A reader only ever saw the old bundle or the finished new one (thresholds and report in).
    listings = {listing for listing, _ in runs["seen"] if listing}
    metadata = {meta for _, meta in runs["seen"] if meta}
    assert listings <= {runs["before"][0], runs["final"][0]}, listings
    assert metadata <= {runs["before"][1], runs["final"][1]}
    assert {"enroll_report.json", "enroll_report.txt"} <= set(runs["final"][0])
    assert WORD in load_bundle(runs["out"]).thresholds


def test_the_same_seed_gives_the_same_bundle(runs):
    assert runs["final"][1] == runs["before"][1]  # thresholds, training figures, everything


def test_the_report_is_strict_json(runs):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    for name in ("enroll_report.json", "metadata.json"):
        json.loads((runs["out"] / name).read_text(), parse_constant=refuse)


def test_the_report_names_the_engines_that_spoke_and_warns_of_the_others(runs):
    from kws_train import synth

    status = synth.engine_status()
    spoke = [e for e in ("pico", "festival", "flite", "espeak") if status[e][0]]
    report = json.loads((runs["out"] / "enroll_report.json").read_text())
    assert report["engines"] == spoke
    assert f"engines {', '.join(spoke)})" in runs["last"].stdout
    for engine in {"pico", "festival", "flite", "espeak"} - set(spoke):
        assert f"kws: warning: speech engine {engine} not used" in runs["last"].stderr


def test_tensorflow_stays_quiet(runs):
    lines = [line for line in runs["last"].stderr.splitlines() if line.strip()]
    assert all(line.startswith("kws: warning: speech engine") for line in lines), lines

