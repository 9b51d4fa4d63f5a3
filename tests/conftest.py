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


# A small, fast recipe for the tiny dataset (written beside the bundle as tiny.yaml).
TINY_TRAIN_CONFIG = """\
words: ["yes", "no", "up", "stop"]
train:
  arch: tcresnet
  epochs: 12
  batch_size: 32
  clips_per_class: 96
  learning_rate: 0.005
  warmup_epochs: 1
  patience: 12
"""


@pytest.fixture(scope="session")
def tiny_bundle(tiny_dataset, tmp_path_factory) -> Path:
    """A bundle trained by `kws train` on ``tiny_dataset`` (labels: silence, unknown, TINY_WORDS).

    Trained once per session (well under a minute); ``tiny_bundle.parent / "tiny.yaml"`` is the
    config it was trained with (its ``words`` are TINY_WORDS).
    """
    root = tmp_path_factory.mktemp("tiny_bundle")
    config = root / "tiny.yaml"
    config.write_text(TINY_TRAIN_CONFIG)
    out = root / "bundle"
    run_kws("train", "--config", str(config), "--data", str(tiny_dataset), "--out", str(out),
            "--workdir", str(root / "work"), timeout=900)
    return out
