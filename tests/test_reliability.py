"""Issue 12: no data loss, no hang, right timestamps, one-line errors everywhere.

Each test stages one fault class (a bad input, a stalled audio server, a full disk) and checks
the promise of the README: one line on stderr and exit 2 for errors, never a traceback, never
a deleted file, never a wrong answer given silently.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_kws
from kws import cli
from kws.bundle import (STAGING, BundleError, bundle_writer, check_posteriors, load_bundle,
                        write_metadata)
from kws.cli import main
from kws.config import ConfigError, load_config, with_overrides
from kws.detector import Detector, chunks, replay
from kws.features import mel_basis
from kws.live import Report
from kws.detector import Detection
from pulse import Lines, pulse_server, virtual_mic  # noqa: F401 (a fixture)

RATE = 16000
LABELS = ["_silence_", "_unknown_", "yes", "no"]


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a failed command (exit 2, no traceback), with ``fragments``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kws: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def in_process(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def write_bundle_dir(directory: Path, marker: str = "v1") -> None:
    config = load_config()
    write_metadata(directory, labels=LABELS, sample_rate=16000, clip_seconds=1.0,
                   features=config.features, basis=mel_basis(config.features, 16000),
                   thresholds={"yes": 0.8}, marker=marker)


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def edit_metadata(bundle: Path, change) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    meta = change(meta)
    (bundle / "metadata.json").write_text(json.dumps(meta))


# --- 1. Data loss: `kws train --out` ------------------------------------------------------


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


def _clip(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(RATE // 2)
    sf.write(path, noise.astype(np.float32), RATE, subtype="PCM_16")


def test_train_refuses_corrupt_words_and_one_class(tmp_path, capsys):
    data = tmp_path / "sc"
    for i in range(3):
        (data / "yes").mkdir(parents=True, exist_ok=True)
        (data / "yes" / f"a{i}_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
        _clip(data / "bird" / f"b{i}_nohash_0.wav", i)
    code, err = in_process(capsys, "train", "--data", str(data), "--out", str(tmp_path / "m"))
    assert code == 2 and "no readable training clips of any word" in err
    assert "every clip of yes" in err and len(err.splitlines()) == 1
    one = tmp_path / "one"
    for i in range(3):
        _clip(one / "yes" / f"a{i}_nohash_0.wav", i)
    code, err = in_process(capsys, "train", "--data", str(one), "--out", str(tmp_path / "m"))
    assert code == 2 and "at least two classes, found only yes" in err


# --- 2. Hang: a stalled audio server ------------------------------------------------------


def _kws(mic, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kws", *args], env=mic.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.pulse
def test_stalled_audio_server_warns_and_stops_at_once(tiny_bundle, tmp_path):

    config = tmp_path / "stall.yaml"
    config.write_text("audio:\n  stall_seconds: 1.0\n")
    with pulse_server() as mic:
        proc = _kws(mic, "listen", "--model", str(tiny_bundle), "--config", str(config))
        stderr = Lines(proc.stderr)
        try:
            stderr.wait_for("listening", timeout=60)  # the stream has started
            os.kill(mic.pid, signal.SIGSTOP)
            try:
                stderr.wait_for("no audio has arrived", timeout=30)
                proc.send_signal(signal.SIGTERM)
                # PortAudio's close never returns while the server is stopped: exiting at all,
                # with the server still stopped, is what shows it was not waited for.
                assert proc.wait(timeout=30) == 0
                # Listing devices with the server stalled: a bounded wait, then one line.
                devices = _kws(mic, "devices")
                out, err = devices.communicate(timeout=30)
                assert devices.returncode == 2 and out == ""
                assert err.strip().splitlines() == [
                    "kws: error: the audio system did not answer within 5 s (starting PortAudio); "
                    "is the audio server (PulseAudio, PipeWire) stalled?"]
            finally:
                os.kill(mic.pid, signal.SIGCONT)
        finally:
            proc.kill()
    err = stderr.close()
    assert any("still waiting" in line for line in err)
    assert err[-1].startswith("kws: stopped after"), err


# --- 3. Timestamps after lost audio -------------------------------------------------------


def test_stream_time_counts_lost_samples(spoken, tiny_bundle):
    audio, labels, _ = spoken
    config = with_overrides(load_config(tiny_bundle.parent / "tiny.yaml"),
                            {"detector.model": str(tiny_bundle)})
    bundle = load_bundle(tiny_bundle, config)
    lead = np.zeros(round(2.5 * RATE), np.float32)  # 2.5 s into a 2-s ring: 0.5 s is lost
    stream = np.concatenate([lead, audio[:round((labels[1][2] + 1.5) * RATE)]])
    reference = list(replay(Detector.from_bundle(bundle, config), chunks(stream, 160)))
    lossy = Detector.from_bundle(bundle, config)
    lossy.write(stream[:len(lead)])
    found = lossy.process()
    assert lossy.lost_samples == round(0.5 * RATE)
    found += list(replay(lossy, chunks(stream[len(lead):], 160)))
    assert [d.word for d in found] == [d.word for d in reference] == ["yes", "no"]
    for got, want in zip(found, reference):
        assert got.time == pytest.approx(want.time, abs=0.03)  # was 0.5 s early


def test_json_has_stream_time_and_wall_clock(capsys):
    report = Report(json_lines=True)
    report.start()
    report.detection(Detection(2.0, "yes", 0.9))
    record = json.loads(capsys.readouterr().out)
    from datetime import datetime

    clock = datetime.fromisoformat(record["clock"])
    assert abs(clock.timestamp() - (time.time() + 2.0)) < 1.0
    assert record["time"] == 2.0


# --- 4. One line and exit 2, everywhere ---------------------------------------------------


def test_any_failure_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import kws.commands.devices as devices

    def boom(args, config):
        raise ValueError("something deep\nsecond line")

    monkeypatch.setattr(devices, "run", boom)
    code, err = in_process(capsys, "devices")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("kws: error: ValueError: something deep") and "--debug" in err
    with pytest.raises(ValueError):
        main(["--debug", "devices"])
    monkeypatch.setenv("KWS_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["devices"])


def full_disk(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "kws", *command], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=env)


def test_devices_on_a_full_disk(virtual_mic):
    # The virtual microphone gives `devices` a list to print, and so something to fail on.
    one_error_line(full_disk(["devices"], virtual_mic.env), "cannot write output", "No space left on device")


def test_full_disk_and_closed_stdout(spoken, tiny_bundle):
    wav = str(spoken[2])
    one_error_line(full_disk(["replay", wav, "--model", str(tiny_bundle)]), "cannot write output",
                   "No space left on device")
    closed = subprocess.run(f"{sys.executable} -m kws replay {wav} --model {tiny_bundle} >&-",
                            shell=True, capture_output=True, text=True)
    one_error_line(closed, "standard output is closed")


def test_bad_audio_inputs_are_one_line(tmp_path, tiny_bundle, spoken):
    raw = tmp_path / "clip.raw"
    raw.write_bytes(np.zeros(1600, np.int16).tobytes())
    one_error_line(run_kws("replay", str(raw), "--model", str(tiny_bundle), check=False),
                   "headerless raw audio", "sox")
    one_error_line(run_kws("replay", str(tmp_path), "--model", str(tiny_bundle), check=False),
                   "is a directory")
    # `-` reads a WAV from stdin, as a file would be read.
    stdin = subprocess.run([sys.executable, "-m", "kws", "replay", "-", "--model", str(tiny_bundle),
                            "--json", "--threshold", "0.6"], input=spoken[2].read_bytes(),
                           capture_output=True)
    direct = run_kws("replay", str(spoken[2]), "--model", str(tiny_bundle), "--json",
                     "--threshold", "0.6")
    assert stdin.returncode == 0, stdin.stderr
    records = lambda out: [json.loads(line) for line in out.splitlines()]  # noqa: E731
    assert {d["file"] for d in records(stdin.stdout.decode())} == {"-"}
    assert [{**d, "file": "-"} for d in records(direct.stdout)] == records(stdin.stdout.decode())
    garbage = subprocess.run([sys.executable, "-m", "kws", "replay", "-", "--model", str(tiny_bundle)],
                             input=b"not audio", capture_output=True, text=False)
    assert garbage.returncode == 2
    assert garbage.stderr.decode().splitlines() == [
        "kws: error: standard input: not a readable audio file (Format not recognised.)"]


@pytest.mark.parametrize("hop", ["inf", "1e-9", "1e-300", "nan", "2000"])
def test_absurd_hop_is_one_line(tiny_bundle, capsys, hop, spoken):
    code, err = in_process(capsys, "replay", str(spoken[2]), "--model", str(tiny_bundle),
                           "--hop-ms", hop)
    assert code == 2 and err.startswith("kws: error: ") and err.count("\n") == 1, err
    assert "hop_ms" in err


@pytest.mark.parametrize("text, key", [
    ("detector:\n  hop_ms: .inf\n", "detector.hop_ms"),
    ("audio:\n  ring_seconds: 1e9\n", "audio.ring_seconds"),
    ("posterior:\n  smoothing_ms: 1e12\n", "posterior.smoothing_ms"),
    ("detector:\n  num_threads: 100000\n", "detector.num_threads"),
    ("posterior:\n  refractory_ms: .nan\n", "posterior.refractory_ms"),
])
def test_absurd_config_values_are_one_line(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_non_utf8_config_is_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"words: [\xff\xfe]\n")
    code, err = in_process(capsys, "--config", str(path), "devices")
    assert code == 2 and "not a text (UTF-8) file" in err and err.count("\n") == 1


@pytest.mark.parametrize("meta, message", [
    ([], "a JSON object is expected, got list"),
    (None, "got null"),
    ("thresholds-list", "'thresholds' must be an object"),
    ("threshold-range", "thresholds.yes must be a number between 0 and 1, got 1.5"),
    ("threshold-nan", "thresholds.yes must be a number between 0 and 1"),
    ("threshold-key", "thresholds: 'of' is not one of the model's words"),
])
def test_malformed_metadata_is_one_line(bundle_copy, capsys, meta, message):
    def change(original):
        if meta == "thresholds-list":
            return {**original, "thresholds": [0.5, 0.6]}
        if meta == "threshold-range":
            return {**original, "thresholds": {"yes": 1.5}}
        if meta == "threshold-nan":
            return {**original, "thresholds": {"yes": float("nan")}}
        if meta == "threshold-key":
            return {**original, "thresholds": {"of": 0.5}}
        return meta

    edit_metadata(bundle_copy, change)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bundle(bundle_copy)


def _npz(path: Path, kind: str) -> None:
    good = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing key":
        np.savez(path, other=np.zeros(3))
    elif kind == "wrong type":
        np.savez(path, basis=np.array([["a", "b"]]))
    elif kind == "wrong shape":
        np.savez(path, basis=np.zeros((40, 7), np.float32))


@pytest.mark.parametrize("kind", ["truncated", "empty", "missing key", "wrong type", "wrong shape"])
def test_broken_frontend_is_one_line(bundle_copy, spoken, capsys, kind):
    _npz(bundle_copy / "frontend.npz", kind)
    code, err = in_process(capsys, "replay", str(spoken[2]), "--model", str(bundle_copy))
    assert code == 2 and "frontend.npz" in err and err.count("\n") == 1, err


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


def test_bench_without_tensorflow_says_so_before_measuring(monkeypatch, capsys, tiny_bundle):
    import kws.eval.bench as bench

    monkeypatch.setattr(bench, "baseline_missing", lambda: "tensorflow")
    monkeypatch.setattr(bench, "pin_to_one_core", lambda: pytest.fail("measured first"))
    code, err = in_process(capsys, "bench", "--model", str(tiny_bundle))
    assert code == 2 and "needs TensorFlow" in err and "--no-baseline" in err


# --- 5. Silent wrong behaviour --------------------------------------------------------------


def test_hop_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="must not exceed the classifier's window"):
        with_overrides(load_config(), {"detector.hop_ms": 1500})


def test_outputs_that_are_not_probabilities_are_refused(bundle_copy, monkeypatch):
    check_posteriors(np.array([0.1, 0.9]), "m")
    for bad in ([188.3, -4.0, 2.0], [np.nan, 0.5], [0.5, 0.2]):
        with pytest.raises(BundleError):
            check_posteriors(np.array(bad), "m")
    from kws import inference

    monkeypatch.setattr(inference.Classifier, "__call__",
                        lambda self, window: np.linspace(-3, 188.3, self.num_classes, dtype=np.float32))
    with pytest.raises(BundleError, match="not probabilities.*logits"):
        load_bundle(bundle_copy).classifier()


def test_config_words_and_threshold_keys_must_be_model_words(tmp_path, tiny_bundle, spoken, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text('posterior:\n  thresholds: {"of": 0.8}\n')
    code, err = in_process(capsys, "--config", str(typo), "replay", str(spoken[2]),
                           "--model", str(tiny_bundle))
    assert code == 2 and "posterior.thresholds: 'of' is not a word of the model" in err
    words = tmp_path / "words.yaml"
    words.write_text('words: ["yes", "left"]\n')
    code, err = in_process(capsys, "--config", str(words), "replay", str(spoken[2]),
                           "--model", str(tiny_bundle))
    assert code == 2 and "words: 'left' is not a word of the model" in err


def test_a_short_clip_is_heard_and_no_detection_is_said(spoken, tiny_bundle, tmp_path):
    audio, labels, _ = spoken
    word, start, end = labels[0]
    clip = tmp_path / "short.wav"
    sf.write(clip, audio[round((start - 0.05) * RATE):round((end + 0.05) * RATE)], RATE,
             subtype="PCM_16")
    assert sf.info(clip).duration < 1.0
    found = run_kws("replay", str(clip), "--model", str(tiny_bundle), "--json",
                    "--threshold", "0.6")
    assert [json.loads(line)["word"] for line in found.stdout.splitlines()] == [word]
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(RATE // 2, np.float32), RATE)
    nothing = run_kws("replay", str(quiet), "--model", str(tiny_bundle))
    assert nothing.stdout == "" and f"kws: {quiet}: no detection" in nothing.stderr


def _state(pid: int) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
    except OSError:
        return None
    return None


def test_exec_hooks_are_capped_and_killed_at_exit(tmp_path, capfd):
    pids = tmp_path / "pids"
    report = Report(command=f"sleep 30 & echo $! >> {pids}; wait", max_hooks=2)
    for i in range(3):
        report.detection(Detection(float(i), "yes", 0.9))
    assert "2 commands still running; not running it for yes" in capfd.readouterr().err
    deadline = time.monotonic() + 5
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    report.finish(grace=0.3)
    assert time.monotonic() - started < 10  # not the 30 s the commands would take
    for pid in map(int, pids.read_text().split()):  # the grandchild `sleep` is gone too
        deadline = time.monotonic() + 10
        while _state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(pid) in (None, "Z"), pid


def test_no_device_message_points_to_devices_and_flag(monkeypatch):
    from kws.audio import microphone

    class NoDevices:
        default = type("default", (), {"device": [-1, -1]})

        def query_devices(self):
            return []

    monkeypatch.setattr(microphone, "import_sounddevice", lambda: NoDevices())
    with pytest.raises(microphone.MicrophoneError, match=r"`kws devices`.*--device"):
        microphone.input_devices()


def test_litert_start_up_line_is_not_printed(spoken, tiny_bundle):
    result = run_kws("replay", str(spoken[2]), "--model", str(tiny_bundle))
    assert "XNNPACK" not in result.stderr and "INFO:" not in result.stderr


def test_stdout_check_passes_under_capture(capsys):
    assert cli._stdout_usable()


def test_mp3_decoder_warnings_stay_off_stderr(tmp_path, tiny_bundle):
    noise = (0.1 * np.random.default_rng(0).standard_normal(RATE * 3)).astype(np.float32)
    good = tmp_path / "good.mp3"
    sf.write(good, noise, RATE, format="MP3")
    data = bytearray(good.read_bytes())
    for i in np.random.default_rng(1).integers(1000, len(data) - 1000, 60):
        data[i:i + 4] = b"\xff\xfb\x00\x00"  # broken frame headers: mpg123 complains per frame
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    result = run_kws("replay", str(bad), "--model", str(tiny_bundle), check=False)
    assert "mpg123" not in result.stderr and "resync" not in result.stderr, result.stderr
    assert result.returncode == 0


def test_rewrite_metadata_swaps_the_bundle_in_one_step(tmp_path):
    from kws.bundle import rewrite_metadata

    out = tmp_path / "m"
    with bundle_writer(out) as staging:
        write_bundle_dir(staging, "v1")
    rewrite_metadata(load_bundle(out), marker="v2", thresholds={"no": 0.9})
    bundle = load_bundle(out)
    assert bundle.metadata["marker"] == "v2" and bundle.thresholds == {"no": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
