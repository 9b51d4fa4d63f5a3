"""Rebuild tests/data/tiny_bundle: the small model bundle every pipeline test runs on.

    python tests/data/make_tiny_bundle.py        # needs espeak-ng and `pip install -e '.[train]'`

It speaks the tiny dataset of ``tests/speech.py`` (four command words and two unknown words,
24 espeak-ng voices each), trains ``tests/data/tiny.yaml`` on it with ``kws train`` (seeded,
one thread, a few minutes) and copies the bundle here without its PNG reports. The result is
committed, so the test suite needs neither TensorFlow nor a training run; only
``tests/test_train.py`` still trains (the end-to-end test of ``kws train``). Rebuild it when
the bundle format or the feature front end changes, then rerun the suite: the detector tests
expect this model to find every word of ``tests/spoken.py``'s stream.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from speech import make_dataset  # noqa: E402

TINY_WORDS = ["yes", "no", "up", "stop"]
TINY_UNKNOWN = ["bird", "house"]
KEEP = ("metadata.json", "frontend.npz", "model.tflite", "model_int8.tflite", "model_stream.tflite",
        "model.keras", "metrics.json")


def main() -> None:
    out = HERE / "tiny_bundle"
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "speech_commands", TINY_WORDS, TINY_UNKNOWN)
        bundle = Path(tmp) / "bundle"
        subprocess.run([sys.executable, "-m", "kws", "train", "--config", str(HERE / "tiny.yaml"),
                        "--data", str(data), "--out", str(bundle), "--workdir", str(Path(tmp) / "work"),
                        "--threads", "1"], check=True)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for name in KEEP:
            if (bundle / name).is_file():
                shutil.copyfile(bundle / name, out / name)
    print(f"{out}: " + ", ".join(f"{p.name} {p.stat().st_size // 1024} KB" for p in sorted(out.iterdir())))


if __name__ == "__main__":
    main()
