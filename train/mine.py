"""Hard-negative mining: the windows of negative audio on which a model fires, as training clips.

A model trained on a few hundred other words still fires on some windows of running speech.
This replays negative audio (folders of it, or long streams, e.g. ``kws make-stream
--negatives DIR --split training``) through the real ``Detector``; wherever any word's
smoothed score reaches ``--threshold`` (well below the detection thresholds, so near misses
count too), the one-second window the classifier saw at the peak of that run of hops is cut
out and written as a WAV. The folder of mined windows is then one more negative source of the
next training round (``train.negatives.sources`` with ``holdout: 0``; recipe
``train/recipes/rounds.sh``). Mine training audio only: validation must stay unheard.

    python -m kws_train.mine --model DIR --audio STREAM.wav [--audio DIR ...] --out MINED
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.data.negatives import audio_files
from kws.eval.scoring import record_stream
from kws.writes import to_json


def peaks(times: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[float, float, int]]:
    """``(time, score, class)`` at the highest hop of each run of hops at or above ``threshold``.

    ``scores`` is ``(hops, classes)`` of the reported words only.
    """
    best = scores.max(axis=1)
    above = best >= threshold
    out, start = [], None
    for i, on in enumerate(np.append(above, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            top = start + int(np.argmax(best[start:i]))
            out.append((float(times[top]), float(best[top]), int(scores[top].argmax())))
            start = None
    return out


def mine(model: str, sources: list[str], out: Path, threshold: float, config_file: str | None) -> dict:
    """Write the mined windows of every file in ``sources`` into ``out``; return a summary."""
    config = load_config(config_file)
    bundle = load_bundle(model, config)
    config = with_overrides(config, {"words": bundle.words})
    rate, length = config.audio.sample_rate, config.audio.clip_samples
    columns = [bundle.labels.index(w) for w in bundle.words]
    files = [f for s in sources for f in (audio_files(s) if Path(s).is_dir() else [Path(s)])]
    out.mkdir(parents=True, exist_ok=True)
    per_word: dict[str, int] = {}
    seconds = 0.0
    for path in files:
        rec = record_stream(bundle, config, path, [])
        seconds += rec.duration
        if not len(rec.times):
            continue
        audio = read_audio(path, rate)
        for time, score, column in peaks(rec.times, rec.scores[:, columns], threshold):
            end = round(time * rate)
            window = audio[max(0, end - length):end]
            word = bundle.words[column]
            write_wav(out / f"{path.stem}_{end:09d}_{word}.wav",
                      np.pad(window, (length - len(window), 0)), rate)
            per_word[word] = per_word.get(word, 0) + 1
    total = sum(per_word.values())
    return {"files": len(files), "hours": round(seconds / 3600, 3), "windows": total,
            "per_hour": round(total / max(seconds / 3600, 1e-9), 1), "per_word": per_word,
            "threshold": threshold, "model": str(model)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kws_train.mine", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, metavar="DIR", help="bundle to mine with")
    parser.add_argument("--audio", required=True, action="append", metavar="PATH",
                        help="negative training audio: a file or a folder (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the mined windows")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="smoothed word score that makes a window hard (default: 0.5)")
    parser.add_argument("--config", help="config laid over the defaults")
    args = parser.parse_args(argv)
    summary = mine(args.model, args.audio, Path(args.out), args.threshold, args.config)
    (Path(args.out) / "mined.json").write_text(to_json(summary, indent=1) + "\n")
    print(to_json(summary), file=sys.stdout)


if __name__ == "__main__":
    main()
