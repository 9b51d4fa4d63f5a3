"""The write rule of issue #20 for every command that writes (``kws.writes``): it writes only
its own files, replaces them in one step (the old ones usable until then, also when the
command is killed half way), touches nothing else in the folder, or refuses in one line before
any work. ``kws enroll`` run for real: ``tests/test_enroll_runs.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import in_process, one_error_line, run_kws, states, torn, view, watched
from kws.bundle import BundleError, bundle_writer, load_bundle, write_metadata
from kws.config import load_config
from kws.errors import KwsError
from kws.features import mel_basis
from kws.writes import STAGING, staged, staged_together

RATE = 16000
LABELS = ["_silence_", "_unknown_", "yes", "no"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_bundle_dir(directory: Path, marker: str = "v1") -> None:
    config = load_config()
    write_metadata(directory, labels=LABELS, sample_rate=RATE, clip_seconds=1.0,
                   features=config.features, basis=mel_basis(config.features, RATE),
                   thresholds={"yes": 0.8}, marker=marker)


@pytest.fixture
def bundle_with_takes(tiny_bundle, tmp_path) -> Path:
    """A bundle folder into which the user put recordings and notes (the issue's example)."""
    out = tmp_path / "lampb"
    shutil.copytree(tiny_bundle, out)
    (out / "takes").mkdir()
    sf.write(out / "takes" / "lamp-01.wav", np.zeros(RATE // 2, np.float32), RATE)
    (out / "notes.txt").write_text("mine\n")
    return out


@pytest.fixture
def no_work(monkeypatch):
    """The training package made unimportable: a command that got past its checks to the work
    would end in another error (no clock decides what "before any work" means)."""
    for name in ("kws_train.main", "kws_train.enroll"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("command", [["enroll", "lamp", "--budget", "tiny"], ["train", "--epochs", "1"]])
def test_a_bundle_folder_holding_the_users_files_is_refused_before_any_work(bundle_with_takes, tmp_path,
                                                                             command, no_work, capsys,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _tree(bundle_with_takes)
    extra = ["--recordings", str(bundle_with_takes / "takes")] if command[0] == "enroll" else ["--data", str(tmp_path)]
    code, err = in_process(capsys, *command, "--out", str(bundle_with_takes), *extra)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "notes.txt" in err and "takes/" in err, err
    assert _tree(bundle_with_takes) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lampb"]


def test_someone_elses_metadata_is_refused_before_any_work(tmp_path, no_work, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "metadata.json").write_text('{"x": 1}')
    code, err = in_process(capsys, "enroll", "lamp", "--out", str(tmp_path / "f"))
    assert code == 2 and "not a kws model bundle" in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "f" / "metadata.json").read_text() == '{"x": 1}'


def test_a_bundle_lists_its_files_and_is_replaced_whole(tmp_path):
    def write(marker: str) -> None:
        with bundle_writer(tmp_path / "m") as staging:
            write_bundle_dir(staging, marker)
            (staging / "model.tflite").write_bytes(marker.encode())

    write("v1")
    assert load_bundle(tmp_path / "m").metadata["files"] == ["frontend.npz", "metadata.json", "model.tflite"]
    write("v2")
    assert (tmp_path / "m" / "model.tflite").read_bytes() == b"v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# Replaces the folder argv[1] through kws.writes.staged; with argv[2] == "delete-then-copy", the
# writer's last step is made a delete-then-copy (the defect the check below must catch).
REPLACER = """
import shutil, sys
from pathlib import Path
from kws import writes
if sys.argv[2] == "delete-then-copy":
    writes._replace = lambda staging, path: (shutil.rmtree(path), shutil.copytree(staging, path))
with writes.staged(sys.argv[1], directory=True) as staging:
    (staging / "metadata.json").write_text("new")
    (staging / "model.tflite").write_text("new model")
"""


@pytest.mark.parametrize("writer", ["kws", "delete-then-copy"])
def test_the_one_step_check_catches_a_delete_then_copy_writer(tmp_path, writer):
    # The check of tests/test_enroll_runs.py::test_the_bundle_is_replaced_in_one_step, on a
    # writer that is right and on one that deletes the old bundle and then copies the new one.
    out, record = tmp_path / "m", tmp_path / "states.json"
    with staged(out, directory=True) as staging:
        (staging / "metadata.json").write_text("old")
    old = view(out)
    subprocess.run(watched(out, record, "-c", REPLACER, str(out), writer), check=True)
    new = view(out)
    assert old != new and new[0] == ("metadata.json", "model.tflite")
    assert bool(torn(states(record), old, new)) == (writer == "delete-then-copy"), states(record)


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


@pytest.fixture
def synced(monkeypatch) -> list:
    """What ``os.fsync`` and ``os.replace`` were called on, in order: ("fsync", path) and
    ("replace", target)."""
    calls = []
    fsync, replace = os.fsync, os.replace

    def record_fsync(fd):
        calls.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        fsync(fd)

    def record_replace(src, dst, **kwargs):
        replace(src, dst, **kwargs)
        calls.append(("replace", Path(dst)))

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    return calls


def test_a_file_is_on_the_disk_before_its_name_and_its_name_before_the_end(tmp_path, synced):
    out = tmp_path / "take.wav"
    with staged(out) as staging:
        staging.write_bytes(b"audio")
    (replaced,) = [i for i, call in enumerate(synced) if call == ("replace", out)]
    assert [c[1].name.startswith(".take.wav.kws-staging-") for c in synced[:replaced]] == [True]
    assert synced[replaced + 1:] == [("fsync", tmp_path)]


def test_a_bundle_is_on_the_disk_file_by_file_before_it_is_swapped_in(tmp_path, synced):
    out = tmp_path / "m"
    for marker in ("v1", "v2"):
        synced.clear()
        with bundle_writer(out) as staging:
            write_bundle_dir(staging, marker)
    staging = synced[0][1].parent
    assert staging.name.startswith(".m.kws-staging-")  # swapped in place of the old: no replace call
    assert {c[1] for c in synced[:-1]} == {staging / "frontend.npz", staging / "metadata.json", staging}
    assert synced[-1] == ("fsync", tmp_path)  # after the swap: the folder's entries
    assert load_bundle(out).metadata["marker"] == "v2"


def test_staging_takes_the_umask_without_changing_it(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("the process umask was changed"))
        with staged(tmp_path / "f.txt") as staging:
            staging.write_text("x")
        with staged(tmp_path / "d", directory=True) as staging:
            (staging / "x").write_text("x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


@pytest.mark.parametrize("fault", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_files_that_belong_together_are_both_replaced_or_neither(tmp_path, monkeypatch, fault):
    wav, csv = tmp_path / "n.wav", tmp_path / "n.csv"
    wav.write_text("old stream")
    replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise fault
        replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(type(fault)):
        with staged_together([wav, csv]) as (new_wav, new_csv):
            new_wav.write_text("new stream")
            new_csv.write_text("new labels")
    monkeypatch.undo()
    # The stream was replaced, then its labels failed: the old stream is back, no labels.
    assert calls[0] == wav and wav.read_text() == "old stream"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.wav"]
    with staged_together([wav, csv]) as (new_wav, new_csv):
        new_wav.write_text("new stream")
        new_csv.write_text("new labels")
    assert (wav.read_text(), csv.read_text()) == ("new stream", "new labels")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv", "n.wav"]


def test_an_output_that_cannot_be_written_is_named_not_its_staging(tmp_path, monkeypatch):
    # What root meets in /sys (os.access says yes, the file system no); any user where the
    # disk is full.
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(KwsError) as err:
        with staged(tmp_path / "n.wav"):
            pytest.fail("no staging was made")
    assert str(err.value) == f"{tmp_path / 'n.wav'}: cannot write it (Permission denied)"
    monkeypatch.undo()
    with pytest.raises(KwsError) as err:
        with staged(tmp_path / "m", directory=True) as staging:
            raise OSError(28, "No space left on device", str(staging / "model.tflite"))
    assert str(err.value) == f"{tmp_path / 'm' / 'model.tflite'}: cannot write it (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_record_creates_nothing(tmp_path):
    result = run_kws("record", "yes", "--count", "1", "--out", str(tmp_path / "t0" / "takes"), "--device", "99",
                     "--countdown", "0", check=False, cwd=tmp_path)
    one_error_line(result)
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


def test_make_stream_never_replaces_a_csv_of_the_users_it_was_not_given(tmp_path, negatives):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("date,amount\n2024-01-01,3\n")
    one_error_line(run_kws("make-stream", "--negatives", str(negatives), "--out", str(mine / "data.wav"),
                           check=False, cwd=tmp_path), "data.csv", "kws did not write it", "--labels")
    assert sorted(p.name for p in mine.iterdir()) == ["data.csv"]
    assert (mine / "data.csv").read_text() == "date,amount\n2024-01-01,3\n"
    # Named, it is the user's choice; and a labels file kws wrote is its own to replace.
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(mine / "data.wav"),
            "--labels", str(mine / "data.csv"), cwd=tmp_path)
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(mine / "data.wav"), cwd=tmp_path)
    assert (mine / "data.csv").read_text().startswith("word,start,end,source")


@pytest.mark.parametrize("name, content", [("metrics.json", '{"accuracy": "mine"}'),
                                           ("confusion.png", "my own picture")])
def test_eval_never_replaces_a_report_file_it_did_not_write(tmp_path, tiny_bundle, capsys, monkeypatch,
                                                             name, content):
    import kws.eval.clips as clips

    monkeypatch.setattr(clips, "evaluation_audio", lambda *a, **k: pytest.fail("evaluated first"))
    report = tmp_path / "report"
    report.mkdir()
    (report / name).write_text(content)
    code, err = in_process(capsys, "eval", "--data", str(tmp_path), "--model", str(tiny_bundle),
                           "--report", str(report))
    assert code == 2 and len(err.splitlines()) == 1 and name in err and "kws did not write it" in err, err
    assert [p.name for p in report.iterdir()] == [name] and (report / name).read_text() == content


def test_eval_stream_never_replaces_a_plot_it_did_not_write(tmp_path, negatives, tiny_bundle):
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(tmp_path / "n.wav"), cwd=tmp_path)
    (tmp_path / "n.det.png").write_text("my own picture")
    one_error_line(run_kws("eval-stream", "--wav", str(tmp_path / "n.wav"), "--model", str(tiny_bundle),
                           check=False, cwd=tmp_path), "n.det.png", "kws did not write it")
    assert (tmp_path / "n.det.png").read_text() == "my own picture"
    assert not (tmp_path / "n.tradeoff.png").exists()


def test_bench_writes_a_plot_only_when_asked(tiny_bundle, tmp_path):
    result = run_kws("bench", "--model", str(tiny_bundle), "--no-baseline", "--hops", "20", "--minutes", "0.02",
                     "--live-seconds", "0.5", "--startup-runs", "1", cwd=tmp_path)
    assert list(tmp_path.iterdir()) == [] and "Histogram" not in result.stdout


def test_make_stream_minutes_of_negatives_are_about_that(tmp_path):
    folder = tmp_path / "neg"
    folder.mkdir()
    sf.write(folder / "a-1.wav", (0.05 * np.random.default_rng(0).standard_normal(120 * RATE)).astype(np.float32),
             RATE)  # one two-minute file
    run_kws("make-stream", "--negatives", str(folder), "--out", str(tmp_path / "n.wav"), "--minutes", "0.5",
            cwd=tmp_path)
    # Half a minute: the file cut to what the gaps around it leave (they vary by a second or so).
    assert 28 <= sf.info(tmp_path / "n.wav").duration <= 32


def test_make_stream_refuses_before_work_and_creates_no_folder(tmp_path, negatives):
    (tmp_path / "blocker").write_text("")
    message = one_error_line(run_kws("make-stream", "--negatives", str(negatives), "--out",
                                      str(tmp_path / "blocker" / "n.wav"), check=False, cwd=tmp_path))
    assert "not a directory" in message
    result = run_kws("make-stream", "--negatives", str(tmp_path / "none"), "--out",
                     str(tmp_path / "new" / "n.wav"), check=False, cwd=tmp_path)
    one_error_line(result)
    assert not (tmp_path / "new").exists()


def test_eval_stream_writes_its_plots_and_nothing_else(tmp_path, negatives, tiny_bundle):
    run_kws("make-stream", "--negatives", str(negatives), "--out", str(tmp_path / "n.wav"), cwd=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_kws("eval-stream", "--wav", str(tmp_path / "n.wav"), "--model", str(tiny_bundle),
                     "--config", str(tiny_bundle.parent / "tiny.yaml"), "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["n.tradeoff.png", "n.det.png"])
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_bundle_writer_never_replaces_what_is_not_a_bundle(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    with pytest.raises(BundleError, match="not a kws model bundle"):
        with bundle_writer(keep) as staging:
            write_bundle_dir(staging)
    assert (keep / "precious.txt").read_text() == "x"
    regular = tmp_path / "file"
    regular.write_text("y")
    with pytest.raises(BundleError, match="not a directory"):
        with bundle_writer(regular):
            pass
    assert regular.read_text() == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "keep"]  # nothing staged


def test_bundle_writer_keeps_the_old_bundle_until_the_new_one_is_complete(tmp_path):
    out = tmp_path / "m"
    with bundle_writer(out) as staging:
        write_bundle_dir(staging, "v1")
    with bundle_writer(out) as staging:
        write_bundle_dir(staging, "v2")
        assert load_bundle(out).metadata["marker"] == "v1"  # still there while v2 is written
    assert load_bundle(out).metadata["marker"] == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with bundle_writer(empty) as staging:  # an empty directory holds nothing to lose
        write_bundle_dir(staging)
    assert load_bundle(empty).metadata["marker"] == "v1"


def test_bundle_writer_cleans_up_after_killed_runs_and_uses_the_umask(tmp_path):
    out = tmp_path / "m"
    stale = tmp_path / f".m{STAGING}-999999999-abc"  # no such process: a killed run's
    stale.mkdir()
    (stale / "model.tflite").write_bytes(b"half")
    live = tmp_path / f".m{STAGING}-{os.getpid()}-abc"  # a writer still running: left alone
    live.mkdir()
    old = os.umask(0o022)
    try:
        with bundle_writer(out) as staging:
            write_bundle_dir(staging)
    finally:
        os.umask(old)
    assert not stale.exists() and live.exists()
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's 0700


def test_train_refuses_a_bad_out_before_training(tmp_path, capsys, monkeypatch):
    # No training package is imported for any of this (it would take seconds): made
    # unimportable, an import before the checks would end in another error.
    monkeypatch.setitem(sys.modules, "kws_train.main", None)
    data = tmp_path / "data"
    data.mkdir()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    code, err = in_process(capsys, "train", "--data", str(data), "--out", str(keep))
    assert code == 2 and "not a kws model bundle" in err and len(err.splitlines()) == 1
    assert (keep / "precious.txt").read_text() == "x"
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, err = in_process(capsys, "train", "--data", str(data), "--out", str(blocker / "m"))
    assert code == 2 and "is not a directory" in err


def test_output_paths_are_checked_before_the_work(tmp_path, capsys, tiny_bundle, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    import kws.eval.clips as clips

    monkeypatch.setattr(clips, "evaluation_audio", lambda *a, **k: pytest.fail("evaluated first"))
    code, err = in_process(capsys, "eval", "--data", str(tmp_path), "--model", str(tiny_bundle),
                           "--report", str(blocker / "report"))
    assert code == 2 and "--report" in err and "is not a directory" in err
    import kws.eval.bench as bench

    monkeypatch.setattr(bench, "measure_hops", lambda *a, **k: pytest.fail("measured first"))
    code, err = in_process(capsys, "bench", "--model", str(tiny_bundle), "--no-baseline",
                           "--plot", str(blocker / "x.png"))
    assert code == 2 and "--plot" in err


def test_rewrite_metadata_swaps_the_bundle_in_one_step(tmp_path):
    from kws.bundle import rewrite_metadata

    out = tmp_path / "m"
    with bundle_writer(out) as staging:
        write_bundle_dir(staging, "v1")
    rewrite_metadata(load_bundle(out), marker="v2", thresholds={"no": 0.9})
    bundle = load_bundle(out)
    assert bundle.metadata["marker"] == "v2" and bundle.thresholds == {"no": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
