"""``kws make-stream``: a long labelled test recording from a Speech Commands split."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.config import Config, with_overrides
from kws.errors import KwsError

HELP = "build a long labelled stream of words (with gaps, unknown words and noise) for eval-stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="Speech Commands folder")
    parser.add_argument("--out", required=True, metavar="LONG.wav", help="stream to write")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv",
                        help="labels to write: word,start,end,source (seconds of speech)")
    parser.add_argument("--split", default="testing", choices=["training", "validation", "testing"],
                        help="clips from this split (default: testing)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length (default: 10)")
    parser.add_argument("--snr-db", type=float,
                        help="speech-to-noise ratio of the background bed (default: stream.snr_db)")
    parser.add_argument("--unknown-fraction", type=float,
                        help="share of unknown words (default: stream.unknown_fraction)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace, config: Config) -> int:
    # The dataset reader is shared with training; kws.data.speech_commands itself needs no TensorFlow.
    from kws.data.speech_commands import UNKNOWN, list_clips, load_noise

    from kws.eval.testaudio import build_stream, pick_clips, write_labels

    if args.minutes <= 0:
        raise KwsError("--minutes must be positive")
    config = with_overrides(config, {"stream.snr_db": args.snr_db,
                                     "stream.unknown_fraction": args.unknown_fraction})
    rate = config.audio.sample_rate
    clips = list_clips(args.data, config.words, args.split, unknown_fraction=1.0)
    by_word: dict = {}
    for path, target in zip(clips.paths, clips.targets):
        if clips.labels[target] in (UNKNOWN, *config.words):
            by_word.setdefault(path.parent.name, []).append(path)
    unknown = sorted(set(by_word) - set(config.words))
    noises, _ = load_noise(args.data, rate)
    rng = np.random.default_rng(args.seed)
    picked = pick_clips(by_word, config.words, unknown, args.minutes * 60, config.stream, rng,
                        lambda path: read_audio(path, rate))
    audio, labels = build_stream(picked, noises, config.stream, rate, rng)
    write_wav(args.out, audio, rate)
    write_labels(args.labels, labels)
    commands = sum(lab.word in config.words for lab in labels)
    print(f"{args.out}: {len(audio) / rate / 60:.1f} min, {commands} command words, "
          f"{len(labels) - commands} unknown, noise at {config.stream.snr_db:g} dB SNR"
          + ("" if noises else " (no _background_noise_: none added)"), file=sys.stderr)
    return 0
