"""Shared fixtures and the suite's tiers.

Every pipeline test (detector, replay, listen, bench) runs on ``tiny_bundle``, a small model
committed in ``tests/data/tiny_bundle`` (rebuilt by ``tests/data/make_tiny_bundle.py``), so
no test waits for a training run. Only ``tests/test_train.py`` trains (marked ``train``).

Markers (see pyproject.toml): ``train`` needs TensorFlow; ``espeak`` and ``pulse`` need
espeak-ng and PulseAudio and are skipped, with the reason, where the tool is missing. Tests get
``espeak`` or ``pulse`` from the fixtures they use (``tiny_dataset``; ``virtual_mic``), and
``speech.speak`` skips a test that calls espeak-ng where it is missing. The ``spoken`` stream is
committed audio (``tests/spoken.py``), so the words it expects do not depend on espeak-ng.
CI installs everything and must skip nothing: with ``KWS_SKIP_REPORT`` set, every skipped test
and its reason are written to that file, which ``.ci/run`` checks.
The fast tier, ``pytest -m "not train"``, never imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from speech import make_dataset  # noqa: E402
from spoken import spoken_stream  # noqa: E402

DATA = Path(__file__).parent / "data"
# The tiny dataset: four command words plus two "unknown" words, 24 espeak voices each.
TINY_WORDS = ["yes", "no", "up", "stop"]
TINY_UNKNOWN = ["bird", "house"]

# marker -> (fixtures that imply it, tools it needs)
NEEDS = {"espeak": ({"tiny_dataset"}, [("espeak-ng", "espeak-ng")]),
         "pulse": ({"virtual_mic"}, [("pulseaudio", "pulseaudio"), ("paplay", "pulseaudio-utils"),
                                     ("pactl", "pulseaudio-utils")])}


def missing_tool(marker: str) -> str | None:
    """Why tests marked ``marker`` cannot run here (a missing tool), or None."""
    for tool, package in NEEDS[marker][1]:
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install {package})"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, (fixtures, _) in NEEDS.items():
            if fixtures & set(getattr(item, "fixturenames", ())):
                item.add_marker(marker)
            if item.get_closest_marker(marker) and (reason := missing_tool(marker)):
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    """Every skipped test and why, into ``$KWS_SKIP_REPORT`` (in the controller under xdist)."""
    path = os.environ.get("KWS_SKIP_REPORT")
    if not path or hasattr(terminalreporter.config, "workerinput"):  # xdist workers: the controller writes
        return
    with open(path, "a") as out:
        for report in terminalreporter.stats.get("skipped", []):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            out.write(f"{report.nodeid}: {reason}\n")


def pytest_sessionfinish(session, exitstatus):
    """The fast tier proves it: no test of ``-m "not train"`` imported TensorFlow."""
    if "not train" in (session.config.option.markexpr or "") and "tensorflow" in sys.modules:
        print("\nconftest: the fast tier imported tensorflow", file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Speech Commands layout, spoken by espeak-ng: TINY_WORDS and TINY_UNKNOWN, 24 voices."""
    return make_dataset(tmp_path_factory.mktemp("sc") / "speech_commands", TINY_WORDS, TINY_UNKNOWN)


@pytest.fixture(scope="session")
def spoken(tmp_path_factory):
    """``(audio, [(word, start_s, end_s)], wav path)``: TINY_WORDS by voices the tiny model never heard
    (committed: ``tests/data/spoken.flac``)."""
    return spoken_stream(tmp_path_factory.mktemp("spoken"))


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """The committed test bundle (labels: silence, unknown, TINY_WORDS).

    ``tiny_bundle.parent / "tiny.yaml"`` is the config it was trained with (its ``words`` are
    TINY_WORDS). Treat it as read-only: copy it before changing it.
    """
    return DATA / "tiny_bundle"


def run_kws(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `kws` command line in a subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "kws", *args], capture_output=True, text=True,
                            env=env, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"kws {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a failed command (exit 2, no traceback), holding ``fragments``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kws: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def in_process(capsys, *argv: str) -> tuple[int, str]:
    """``kws argv`` in this process: its exit status and its stderr."""
    from kws.cli import main

    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A copy of the committed test bundle, free to change."""
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


# What a reader of the folder ``out`` finds: None (nothing there) or its listing and a digest of
# its metadata.json (None without one). Source text: the watched process runs it too.
_VIEW = r"""
def view(out):
    import hashlib, os
    try:
        names = tuple(sorted(os.listdir(out)))
    except FileNotFoundError:
        return None
    try:
        with open(os.path.join(out, "metadata.json"), "rb") as meta:
            return names, hashlib.sha256(meta.read()).hexdigest()
    except FileNotFoundError:
        return names, None
"""
exec(_VIEW)  # defines view(out)

# Run by ``watched``: the program, with an audit hook that notes ``view(OUT)`` before every file
# operation under OUT's folder and once more at exit. What a reader meets between two
# operations is what the next one finds before it runs (or the exit does), so these are all the
# states OUT went through, however fast: no polling, no race.
_WATCHER = _VIEW + r"""
import atexit, json, os, runpy, sys
out, record, how, program = sys.argv[1:5]
sys.argv[:] = [program if how == "-m" else "-c", *sys.argv[5:]]
folder = os.path.dirname(os.path.abspath(out)) + os.sep
seen, busy = set(), [False]
# WATCH_KILL_AT=NAME: die (SIGKILL) on opening NAME in a staging folder of OUT, half way through.
kill_at = os.environ.get("WATCH_KILL_AT")
staging = os.sep + "." + os.path.basename(out) + ".kws-staging-"

def under(value):
    return isinstance(value, (str, bytes, os.PathLike)) and \
        os.path.abspath(os.fsdecode(value)).startswith(folder)

def hook(event, args):
    if busy[0] or not (event == "open" or event.startswith(("os.", "shutil.", "tempfile."))):
        return
    if kill_at and event == "open" and isinstance(args[0], str) and staging in args[0] \
            and args[0].endswith(os.sep + kill_at):
        os.kill(os.getpid(), 9)
    if any(under(a) for a in args):
        busy[0] = True
        seen.add(view(out))
        busy[0] = False

def save():
    busy[0] = True
    seen.add(view(out))
    with open(record, "w") as f:
        json.dump(list(seen), f)

atexit.register(save)
sys.addaudithook(hook)
if how == "-m":
    runpy.run_module(program, run_name="__main__", alter_sys=True)
else:
    exec(compile(program, "<watched>", "exec"), {"__name__": "__main__"})
"""


def watched(out: Path, record: Path, how: str, program: str, *args: str) -> list[str]:
    """The command line that runs ``python -m program args`` (``how`` ``-m``) or the code
    ``program`` (``-c``) and writes to ``record`` every ``view`` of ``out`` it went through."""
    return [sys.executable, "-c", _WATCHER, str(out), str(record), how, program, *args]


def torn(seen: set, old, new) -> set:
    """The states a reader met that were neither the ``old`` output nor the ``new`` one."""
    return seen - {old, new}


def states(record: Path) -> set:
    """The views a ``watched`` run wrote, as ``view`` gives them."""
    import json

    return {s if s is None else (tuple(s[0]), s[1]) for s in json.loads(record.read_text())}
