"""Shared fixtures: spoken test audio and a tiny model trained on it (once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from speech import make_dataset  # noqa: E402

# The tiny dataset: four command words plus two "unknown" words, 24 espeak voices each.
TINY_WORDS = ["yes", "no", "up", "stop"]
TINY_UNKNOWN = ["bird", "house"]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("sc") / "speech_commands", TINY_WORDS, TINY_UNKNOWN)


def run_kws(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `kws` command line in a subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "kws", *args], capture_output=True, text=True,
                            env=env, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"kws {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result
