"""The write rule of issue #20 for every command that writes (``kws.writes``): it writes only
its own files, replaces them in one step (the old ones usable until then, also when the
command is killed half way), touches nothing else in the folder, or refuses in one line before
any work. ``kws enroll`` run for real: ``tests/test_enroll_runs.py``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_kws
from kws.bundle import STAGING, bundle_writer, load_bundle, write_metadata
from kws.config import load_config
from kws.features import mel_basis
from kws.writes import staged

RATE = 16000


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kws: error: "), result.stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def bundle_with_takes(tiny_bundle, tmp_path) -> Path:
    """A bundle folder into which the user put recordings and notes (the issue's example)."""
    out = tmp_path / "lampb"
    shutil.copytree(tiny_bundle, out)
    (out / "takes").mkdir()
    sf.write(out / "takes" / "lamp-01.wav", np.zeros(RATE // 2, np.float32), RATE)
    (out / "notes.txt").write_text("mine\n")
    return out


@pytest.mark.parametrize("command", [["enroll", "lamp", "--budget", "tiny"], ["train", "--epochs", "1"]])
def test_a_bundle_folder_holding_the_users_files_is_refused_before_any_work(bundle_with_takes, tmp_path,
                                                                             command):
    before = _tree(bundle_with_takes)
    extra = ["--recordings", str(bundle_with_takes / "takes")] if command[0] == "enroll" else ["--data", str(tmp_path)]
    started = time.monotonic()
    result = run_kws(*command, "--out", str(bundle_with_takes), *extra, check=False, cwd=tmp_path)
    message = _one_line_error(result)
    assert "notes.txt" in message and "takes/" in message, message
    assert time.monotonic() - started < 30  # refused, not trained
    assert _tree(bundle_with_takes) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lampb"]


def test_someone_elses_metadata_is_refused_before_any_work(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "metadata.json").write_text('{"x": 1}')
    started = time.monotonic()
    message = _one_line_error(run_kws("enroll", "lamp", "--out", str(tmp_path / "f"), check=False, cwd=tmp_path))
    assert "not a kws model bundle" in message and time.monotonic() - started < 30
    assert (tmp_path / "f" / "metadata.json").read_text() == '{"x": 1}'


def test_a_bundle_lists_its_files_and_is_replaced_whole(tmp_path):
    config = load_config()

    def write(marker: str) -> None:
        with bundle_writer(tmp_path / "m") as staging:
            write_metadata(staging, labels=["_silence_", "_unknown_", "yes"], sample_rate=RATE,
                           clip_seconds=1.0, features=config.features,
                           basis=mel_basis(config.features, RATE), thresholds={}, marker=marker)
            (staging / "model.tflite").write_bytes(marker.encode())

    write("v1")
    assert load_bundle(tmp_path / "m").metadata["files"] == ["frontend.npz", "metadata.json", "model.tflite"]
    write("v2")
    assert (tmp_path / "m" / "model.tflite").read_bytes() == b"v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


KILLED_WRITER = """
import sys, time
from kws.writes import staged
with staged(sys.argv[1], directory=sys.argv[2] == "dir") as staging:
    if sys.argv[2] == "dir":
        (staging / "half").write_text("new")
    else:
        staging.write_text("new, half")
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_writer_killed_half_way_leaves_the_old_output(tmp_path, kind):
    out = tmp_path / ("out.wav" if kind == "file" else "out")
    with staged(out, directory=kind == "dir") as staging:
        (staging / "old" if kind == "dir" else staging).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), kind], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert ((out / "old") if kind == "dir" else out).read_text() == "old"
    assert len(list(tmp_path.glob(f".{out.name}{STAGING}-*"))) == 1  # the dead writer's
    with staged(out, directory=kind == "dir") as staging:  # the next write removes it
        (staging / "new" if kind == "dir" else staging).write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", out.name]


def test_an_interrupted_write_leaves_the_old_output(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged(out) as staging:
            staging.write_text("half")
            raise KeyboardInterrupt
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_failed_record_creates_nothing(tmp_path):
    result = run_kws("record", "yes", "--count", "1", "--out", str(tmp_path / "t0" / "takes"), "--device", "99",
                     "--countdown", "0", check=False, cwd=tmp_path)
    _one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def negatives(tmp_path) -> Path:
    """A folder of audio without commands: two speakers of noise."""
    folder = tmp_path / "neg"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a-1.wav", "b-1.wav"):
        sf.write(folder / name, (0.05 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
    return folder


def test_make_stream_replaces_its_two_files_and_nothing_else(tmp_path, negatives):
    out = tmp_path / "streams"
    out.mkdir()
    (out / "n.wav").write_text("old stream")
    (out / "notes.txt").write_text("mine")
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(out / "n.wav"), cwd=tmp_path)
    assert sf.info(out / "n.wav").duration >= 4  # both files, with gaps
    assert (out / "n.csv").read_text().startswith("word,start,end,source")
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["n.csv", "n.wav", "notes.txt"]


def test_make_stream_refuses_before_work_and_creates_no_folder(tmp_path, negatives):
    (tmp_path / "blocker").write_text("")
    message = _one_line_error(run_kws("make-stream", "--negatives", str(negatives), "--out",
                                      str(tmp_path / "blocker" / "n.wav"), check=False, cwd=tmp_path))
    assert "not a directory" in message
    result = run_kws("make-stream", "--negatives", str(tmp_path / "none"), "--out",
                     str(tmp_path / "new" / "n.wav"), check=False, cwd=tmp_path)
    _one_line_error(result)
    assert not (tmp_path / "new").exists()


def test_eval_stream_writes_its_plots_and_nothing_else(tmp_path, negatives, tiny_bundle):
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(tmp_path / "n.wav"), cwd=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_kws("eval-stream", "--wav", str(tmp_path / "n.wav"), "--model", str(tiny_bundle),
                     "--config", str(tiny_bundle.parent / "tiny.yaml"), "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["n.tradeoff.png", "n.det.png"])
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"
