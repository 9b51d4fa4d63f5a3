"""The reference audio of ``tests/test_reference.py``: real speech with known answers.

Two steps, each one command from the repository root:

    .venv/bin/python tests/data/make_reference.py expected
        Re-record what each model detects on the committed audio, into
        ``tests/data/reference/expected_<name>.json`` (``default``: the shipped model,
        ``models/default`` with ``config.yaml``; ``tiny``: ``tests/data/tiny_bundle`` with its
        ``tiny.yaml``). Run it after a model changes, and read the diff: words lost are what
        the new model no longer hears. It needs only the committed files.

    .venv/bin/python tests/data/make_reference.py audio ../shared/speech_commands
        Rebuild the audio itself (rarely; it needs the Speech Commands folder): clips of the
        testing list, each from a different speaker, of the ten commands and of other words,
        laid out with 1.5-2.5 s gaps over the dataset's background noise at 20 dB SNR
        (``kws.eval.testaudio.build_stream``, as ``kws make-stream`` builds streams), written as
        ``commands.flac`` with its labels ``commands.csv`` (the ``kws eval-stream`` format, each
        clip's source named) and ``ATTRIBUTION.md``. Then run ``expected``.

Nothing here is used by ``scripts/figures.sh``: the README's figures do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).resolve().parent / "reference"
AUDIO = REFERENCE / "commands.flac"
RATE = 16000
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
PER_COMMAND = 3
OTHERS = 15  # clips of other words, each a different word
GAPS = (1.5, 2.5)
SNR_DB = 20.0
SEED = 23

# name -> (bundle, config), relative to the repository root.
MODELS = {"default": ("models/default", "config.yaml"),
          "tiny": ("tests/data/tiny_bundle", "tests/data/tiny.yaml")}


def expected_path(name: str) -> Path:
    return REFERENCE / f"expected_{name}.json"


def detect(name: str, audio: Path = AUDIO) -> tuple[list[dict], dict[str, float]]:
    """What ``kws replay FILE --json`` reports on ``audio`` with the model ``name`` (the same
    path: ``Spotter.replay`` with a window of silence at the end), and its thresholds."""
    sys.path.insert(0, str(ROOT))
    from kws.api import Spotter
    from kws.audio.files import read_blocks

    bundle, config = MODELS[name]
    spotter = Spotter(model=ROOT / bundle, config=ROOT / config)
    rate, _, blocks = read_blocks(audio, spotter.config.audio.block_ms)
    found = [{"time": round(d.time, 3), "word": d.word, "score": round(d.score, 4)}
             for update in spotter.replay(blocks, rate, pad=True) for d in update.detections]
    return found, dict(spotter.thresholds)


def write_expected() -> None:
    from kws.eval.scoring import score
    from kws.eval.testaudio import read_labels

    labels = read_labels(AUDIO.with_suffix(".csv"))
    duration = sf.info(AUDIO).duration
    for name, (bundle, config) in MODELS.items():
        found, thresholds = detect(name)
        result = score([(d["time"], d["word"]) for d in found], labels, list(thresholds), duration, 1.0)
        record = {"model": bundle, "config": config,
                  "regenerate": ".venv/bin/python tests/data/make_reference.py expected",
                  "thresholds": thresholds,
                  "hits": result.hits, "commands": result.commands, "false_alarms": result.false_alarms,
                  "detections": found}
        # One detection a line, so a regeneration's diff reads as words gained and lost.
        head = json.dumps({k: v for k, v in record.items() if k != "detections"}, indent=1)[:-2]
        rows = ",\n  ".join(json.dumps(d) for d in found)
        expected_path(name).write_text(f'{head},\n "detections": [\n  {rows}\n ]\n}}\n')
        print(f"{name}: {len(found)} detections, {result.hits}/{result.commands} commands heard, "
              f"{result.false_alarms} false alarms -> {expected_path(name).relative_to(ROOT)}")


def write_audio(data: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from kws.audio.files import read_audio
    from kws.config import StreamConfig
    from kws.eval.testaudio import build_stream, write_labels

    rng = np.random.default_rng(SEED)
    testing = sorted((data / "testing_list.txt").read_text().split())
    by_word: dict[str, list[str]] = {}
    for rel in testing:
        by_word.setdefault(rel.split("/")[0], []).append(rel)
    others = sorted(w for w in by_word if w not in COMMANDS)
    wanted = [(w, PER_COMMAND) for w in COMMANDS] + [(str(w), 1) for w in rng.permutation(others)[:OTHERS]]
    picks, speakers = [], set()
    for word, count in wanted:  # every clip from another speaker
        fresh = [rel for rel in rng.permutation(by_word[word]) if rel.split("/")[1].split("_")[0] not in speakers]
        picks += [(word, str(rel)) for rel in fresh[:count]]
        speakers |= {rel.split("/")[1].split("_")[0] for rel in fresh[:count]}
    order = rng.permutation(len(picks))
    clips = [(picks[i][0], picks[i][1], read_audio(data / picks[i][1], RATE)) for i in order]
    noises = [read_audio(p, RATE) for p in sorted((data / "_background_noise_").glob("*.flac"))]
    params = StreamConfig(gap_seconds=GAPS, unknown_fraction=0.0, snr_db=SNR_DB, tolerance_ms=1000)
    audio, labels = build_stream(clips, noises, params, RATE, rng)
    REFERENCE.mkdir(exist_ok=True)
    sf.write(AUDIO, audio, RATE, subtype="PCM_16")
    write_labels(AUDIO.with_suffix(".csv"), labels)
    sources = "\n".join(f"- `{lab.source}`" for lab in labels)
    (REFERENCE / "ATTRIBUTION.md").write_text(
        "# Attribution\n\n"
        "`commands.flac` is made of clips of the Speech Commands dataset (Pete Warden, 2018,\n"
        "\"Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition\",\n"
        "arXiv:1804.03209), licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/),\n"
        "and of its `_background_noise_` recordings. Changes: the clips are laid out one after\n"
        "another with gaps, over the background noise mixed at 20 dB SNR, by\n"
        "`tests/data/make_reference.py`. The clips, in order (paths in the dataset's testing list):\n\n"
        f"{sources}\n")
    print(f"{AUDIO.relative_to(ROOT)}: {len(audio) / RATE:.0f} s, {len(labels)} clips, "
          f"{AUDIO.stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("expected", help="re-record each model's detections on the committed audio")
    audio = sub.add_parser("audio", help="rebuild the audio from a Speech Commands folder")
    audio.add_argument("data", type=Path, help="Speech Commands in its official layout")
    args = parser.parse_args()
    if args.step == "audio":
        write_audio(args.data)
    else:
        write_expected()


if __name__ == "__main__":
    main()
