"""Regenerate the README's example output from the code and the shipped model, so it cannot drift.

    .venv/bin/python scripts/readme.py           # rewrite README.md's generated parts
    .venv/bin/python scripts/readme.py --check   # exit 1 naming what is out of date (tests/test_readme.py)

Run it from the repository root after the shipped model changes. Each generated part sits
between ``<!-- readme.py NAME -->`` and ``<!-- /readme.py -->``:

* ``listen``: what ``kws listen`` prints when the first fifteen seconds of
  ``tests/data/reference/commands.flac`` (real Speech Commands test-split recordings) are played
  into a microphone, with the shipped model and the default config: the header of
  ``kws.commands.listen.header`` and listen's own detection lines and summary. The detections
  are a replay's of the same audio (the live path detects what replay does:
  ``tests/test_listen.py``); the wall clock starts at 11:26:40 and the device is an example.
* ``model-size``: the size of the shipped model's files that the wheel carries.
"""

from __future__ import annotations

import re
import sys
import types
from datetime import datetime
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
AUDIO = ROOT / "tests" / "data" / "reference" / "commands.flac"
SECONDS = 15.0
DEVICE = "[1] default (ALSA)"
PART = re.compile(r"(<!-- readme\.py (?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- /readme\.py -->)", re.S)


def listen_example() -> str:
    from kws.api import Spotter
    from kws.commands.listen import header
    from kws.live import Report, listening, summary

    spotter = Spotter()
    audio, rate = sf.read(AUDIO, dtype="float32", frames=int(SECONDS * sf.info(AUDIO).samplerate))
    found = [d for update in spotter.replay([audio], rate) for d in update.detections]
    report = Report()
    report._started = datetime(2026, 1, 1, 11, 26, 40).timestamp()
    microphone = types.SimpleNamespace(overflows=0)
    lines = ["$ kws listen                # fifteen seconds of real test-split recordings played into a "
             "virtual microphone",
             *(f"kws: {line}" for line in header(DEVICE, rate, spotter.config, spotter.bundle.path,
                                                  spotter.detector)),
             f"kws: {listening(DEVICE)}",
             *map(report.line, found), "^C",
             f"kws: {summary(SECONDS, len(found), spotter.detector, microphone)}"]
    return "\n```\n" + "\n".join(lines) + "\n```\n"


def model_size() -> str:
    package_data = re.search(r"\[tool\.setuptools\.package-data\]\s*kws = \[(.*?)\]",
                             (ROOT / "pyproject.toml").read_text(), re.S).group(1)
    patterns = re.findall(r'"([^"]+)"', package_data)
    files = {p for pattern in patterns if pattern.startswith("models/") for p in (ROOT / "kws").glob(pattern)}
    return f"{sum(p.stat().st_size for p in files) / 1e6:.2f} MB"


PARTS = {"listen": listen_example, "model-size": model_size}


def main(argv: list[str]) -> int:
    import os

    os.chdir(ROOT)  # the model path is shown relative to the working folder, as `kws listen` does
    text = README.read_text()
    made = {name: make() for name, make in PARTS.items()}
    new = PART.sub(lambda m: m.group(1) + made[m.group("name")] + m.group(4), text)
    missing = set(PARTS) - {m.group("name") for m in PART.finditer(text)}
    if missing:
        print(f"README.md: no generated part {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    if "--check" in argv:
        stale = [m.group("name") for m in PART.finditer(text) if m.group("body") != made[m.group("name")]]
        if stale:
            print(f"README.md is out of date ({', '.join(stale)}): run .venv/bin/python scripts/readme.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
