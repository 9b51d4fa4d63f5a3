"""The command line as a user meets it: help for every command, one-line errors."""

import subprocess
import sys

import pytest
from conftest import run_kws

from kws.cli import main

COMMANDS = ["listen", "devices", "replay", "make-stream", "eval-stream", "bench", "train", "eval"]


def test_every_command_has_help(capsys):
    top = run_kws("--help").stdout  # the real entry point, once
    for command in COMMANDS:
        assert command in top
        with pytest.raises(SystemExit) as done:  # each command's help, in process
            main([command, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: kws {command}")


def test_missing_training_extras_is_one_line(tmp_path):
    # A runtime-only install (no TensorFlow/Keras): `kws train` must say what to install.
    code = ("import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
            "from kws.cli import main\n"
            f"sys.exit(main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'm')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("kws: error: `kws train` needs the training extras (keras is "
                                     "not installed): pip install -e '.[train]'")
