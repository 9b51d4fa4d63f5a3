"""The command line as a user meets it: help for every command, one-line errors."""

import subprocess
import sys

import pytest
from conftest import in_process, one_error_line, run_kws

from kws import cli
from kws.cli import main
from pulse import virtual_mic  # noqa: F401 (a fixture)

COMMANDS = ["listen", "devices", "replay", "make-stream", "eval-stream", "bench", "train", "eval",
            "enroll", "record"]


def test_every_command_has_help(capsys):
    top = run_kws("--help").stdout  # the real entry point, once
    for command in COMMANDS:
        assert command in top
        with pytest.raises(SystemExit) as done:  # each command's help, in process
            main([command, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: kws {command}")


@pytest.mark.parametrize("command", ["train", "enroll"])
def test_missing_training_extras_is_one_line(command, tmp_path):
    # A runtime-only install (no TensorFlow/Keras): the command must say what to install.
    args = {"train": ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")],
            "enroll": ["enroll", "lights", "--out", str(tmp_path / "m")]}[command]
    code = ("import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
            "from kws.cli import main\n"
            f"sys.exit(main({args!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"kws: error: `kws {command}` needs the training extras (keras is "
                                     "not installed): pip install -e '.[train]'")


def test_help_says_what_a_clone_installs_and_every_exec_variable(capsys):
    def help_of(command: str) -> str:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return " ".join(capsys.readouterr().out.split())  # as argparse wrapped it, unwrapped

    assert "pip install -e '.[zeroconf]'" in help_of("serve")  # kws is on no package index
    assert "pip install -e '.[peers]'" in help_of("bench")
    listen = help_of("listen")
    assert all(name in listen for name in ("KWS_WORD", "KWS_SCORE", "KWS_TIME", "KWS_CLOCK"))


@pytest.mark.parametrize("args, message", [
    (["listen", "--duration", "abc"], "argument --duration: 'abc' is not a number"),
    (["listen", "--duration", "0"], "argument --duration: must be above 0, got 0"),
    (["replay", "x.wav", "--model", "a", "--model", "b"], "argument --model: given twice; one per run"),
])
def test_a_bad_flag_is_one_line_in_words(capsys, args, message):
    with pytest.raises(SystemExit) as done:
        main(args)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("args, message", [
    (["enroll", "lamp", "--engines", "foo"], "unknown engine 'foo'"),
    (["enroll", "lamp", "--base", "/nope"], "--base /nope: not a model bundle"),
    (["record", "123", "--count", "1"], "'123': a word to spot is letters"),
    (["enroll", "123"], "'123': a word to spot is letters"),
])
def test_bad_enroll_and_record_input_is_refused_before_any_work(tmp_path, capsys, monkeypatch, args, message):
    # TensorFlow and the microphone unavailable: refused before either is needed, or another
    # error would come.
    for name in ("tensorflow", "keras", "sounddevice"):
        monkeypatch.setitem(sys.modules, name, None)
    code, err = in_process(capsys, *args, "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_threshold_flag_parsing():
    from kws.posterior import parse_thresholds

    assert parse_thresholds("0.8") == 0.8
    assert parse_thresholds(" up=0.9, off=0.8 ") == {"up": 0.9, "off": 0.8}
    for bad, message in [("1.5", "not between 0 and 1"), ("up=-0.1", "up: -0.1 is not between"),
                         ("up=x", "up: 'x' is not a number"), ("up", "not a number"),
                         ("up=0.9,0.8", "expected WORD=VALUE"), ("up=0.9,up=0.8", "up given twice"),
                         ("nan", "not between 0 and 1")]:
        with pytest.raises(ValueError, match=message):
            parse_thresholds(bad)


def test_threshold_errors_on_the_command_line(tiny_bundle, tmp_path):
    wav = tmp_path / "quiet.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(8000, np.float32), 16000)
    result = run_kws("replay", str(wav), "--model", str(tiny_bundle), "--threshold", "up=0.9,off=0.8",
                     check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["kws: error: thresholds: off not among the model's words "
                                          "(yes, no, up, stop)"]
    result = run_kws("replay", str(wav), "--model", str(tiny_bundle), "--threshold", "up=2", check=False)
    assert result.returncode == 2 and "--threshold: up: 2 is not between 0 and 1" in result.stderr


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


def test_stdout_check_passes_under_capture(capsys):
    assert cli._stdout_usable()
