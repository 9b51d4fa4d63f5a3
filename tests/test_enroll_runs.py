"""``kws enroll`` run for real into the same folder (issue #20): the bundle is replaced in one
step and a run killed half way loses nothing; the same seed gives the same bundle; the report
names only the engines that spoke and is strict JSON; TensorFlow's chatter stays off the
terminal.

One module-scoped fixture does the runs (about half a minute each on ``--budget tiny``,
espeak-ng voices only); each test checks one promise on what they left. The runs are
``watched`` (tests/conftest.py): every state the bundle folder went through is recorded before
each file operation, so a reader who came at any moment is accounted for, without polling. The
check fails on a delete-then-copy writer: ``test_writes.py`` shows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import states, torn, view, watched
from kws.bundle import load_bundle
from kws.writes import STAGING

pytestmark = [pytest.mark.train, pytest.mark.espeak]

WORD = "lamp"


def _enroll(out: Path, cache: Path, seed: int, record: Path) -> list[str]:
    return watched(out, record, "-m", "kws", "enroll", WORD, "--out", str(out), "--budget", "tiny",
                   "--seed", str(seed), "--cache", str(cache), "--no-progress", "--threads", "2")


def _staging(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}{STAGING}-*"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seed 1 into ``out``; seed 0 into ``out``, killed once its new bundle is half built (on
    opening its metadata); seed 0 again, watched; seed 0 once more into a folder of its own
    (the twin)."""
    tmp = tmp_path_factory.mktemp("enroll")
    out, cache, record = tmp / "lampb", tmp / "cache", tmp / "states.json"
    env = {k: v for k, v in os.environ.items() if k != "KWS_DEBUG"}

    def enroll(folder: Path, seed: int, **extra) -> subprocess.CompletedProcess:
        folder.parent.mkdir(exist_ok=True)
        return subprocess.run(_enroll(folder, cache, seed, record), capture_output=True, text=True,
                              cwd=tmp, env={**env, **extra}, timeout=900)

    first = enroll(out, 1)
    assert first.returncode == 0, first.stderr
    before = view(out)

    killed = enroll(out, 0, WATCH_KILL_AT="metadata.json")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after_kill, left = view(out), _staging(out)

    last = enroll(out, 0)
    assert last.returncode == 0, last.stderr
    seen = states(record)
    twin = enroll(tmp / "twin" / "lampb", 0)
    assert twin.returncode == 0, twin.stderr
    return {"out": out, "last": last, "before": before, "after_kill": after_kill, "left_by_kill": left,
            "seen": seen, "final": view(out), "twin": tmp / "twin" / "lampb"}


def test_a_run_killed_half_way_leaves_the_old_bundle_usable(runs):
    assert runs["left_by_kill"], "the run was not killed while it built the new bundle"
    assert runs["after_kill"] == runs["before"]
    assert not _staging(runs["out"])  # the next run removed what the killed one left


def test_the_bundle_is_replaced_in_one_step(runs):
    # Seeds 1 and 0: the old bundle and the new differ, so a reader could tell them apart.
    assert runs["before"] != runs["final"]
    # Before every file operation of the run, a reader found the old bundle or the finished
    # new one (thresholds and report in): never no folder, a part of one, or one without metadata.
    assert not torn(runs["seen"], runs["before"], runs["final"]), runs["seen"]
    assert {"enroll_report.json", "enroll_report.txt"} <= set(runs["final"][0])
    assert WORD in load_bundle(runs["out"]).thresholds


def test_the_same_seed_gives_the_same_bundle(runs):
    twin = runs["twin"]
    assert view(twin)[0] == runs["final"][0]  # the same files
    # The metadata (thresholds, training figures, everything) equal, byte for byte; shown as a
    # dict when it is not.
    assert json.loads((twin / "metadata.json").read_bytes()) == json.loads((runs["out"] / "metadata.json").read_bytes())
    assert view(twin) == runs["final"]


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
    # Nor does the export's note that an enrolled model has no streaming twin come first.
    assert "no streaming model" not in runs["last"].stdout

