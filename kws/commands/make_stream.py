"""``kws make-stream``: a long labelled test recording, of command words or of negative audio.

Two kinds, as keyword-spotting benchmarks measure them:

* ``--data DIR``: Speech Commands clips of one split, command and unknown words 2-4 s apart
  (hits, misses, latency and false alarms on other words);
* ``--negatives DIR``: any folder of audio in which no command is said (running speech,
  phrases, music, noise), whole files one after another, for false alarms per hour. With
  ``--split`` only that part of the folder's speaker split is used (``kws.data.negatives``),
  so validation and testing never hear what training did.

Both lie over a background-noise bed (``--noise DIR``, by default ``DIR/_background_noise_``
of ``--data``) at ``stream.snr_db``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.cli import count_argument
from kws.config import Config, with_overrides
from kws.errors import KwsError
from kws.writes import check_target, check_unnamed, staged_together

HELP = "build a long labelled stream (command words with gaps, or negative audio) for eval-stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DIR", help="Speech Commands folder: a stream of its words")
    source.add_argument("--negatives", metavar="DIR",
                        help="folder of audio with no commands in it: a stream for false alarms per hour")
    parser.add_argument("--out", required=True, metavar="LONG.wav", help="stream to write")
    parser.add_argument("--labels", metavar="LABELS.csv",
                        help="labels to write: word,start,end,source (default: LONG.csv)")
    parser.add_argument("--split", choices=["training", "validation", "testing"],
                        help="--data: clips of this split (default: testing); --negatives: this "
                             "part of the speaker split (default: every file)")
    parser.add_argument("--minutes", type=float,
                        help="length (default: 10 for --data, every file for --negatives)")
    parser.add_argument("--noise", metavar="DIR",
                        help="background noise recordings (default: _background_noise_ of --data)")
    parser.add_argument("--snr-db", type=float,
                        help="speech-to-noise ratio of the background bed (default: stream.snr_db)")
    parser.add_argument("--unknown-fraction", type=float,
                        help="share of unknown words (default: stream.unknown_fraction)")
    parser.add_argument("--official", action="store_true",
                        help="--data: only clips of the official test set's speakers (the root's "
                             "official_test_<split>_list.txt): the people keyword spotters are compared on")
    parser.add_argument("--seed", type=count_argument, default=0)


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.data.negatives import audio_files, negative_files
    from kws.data.speech_commands import OFFICIAL_LIST, UNKNOWN, list_clips, load_audio_files, load_noise
    from kws.eval.testaudio import (build_stream, is_labels_file, labels_path, pick_clips, pick_negatives,
                                    write_labels)

    if args.minutes is not None and not 0 < args.minutes < 1e5:
        raise KwsError("--minutes must be positive")
    labels_out = labels_path(args.out, args.labels)
    check_target(args.out, "--out")
    if args.labels:
        check_target(labels_out, "--labels")
    else:
        check_unnamed(labels_out, "labels", is_labels_file, f"the labels of --out {args.out} go there: "
                      "name another file with --labels")
    config = with_overrides(config, {"stream.snr_db": args.snr_db,
                                     "stream.unknown_fraction": args.unknown_fraction})
    rate = config.audio.sample_rate
    rng = np.random.default_rng(args.seed)
    read = lambda path: read_audio(path, rate)  # noqa: E731
    if args.negatives:
        files = negative_files(args.negatives, args.split, config.train.negatives.holdout)
        if not files:
            raise KwsError(f"{args.negatives}: no audio files" +
                           (f" in the {args.split} split" if args.split else ""))
        seconds = None if args.minutes is None else args.minutes * 60
        picked = pick_negatives(files, seconds, rate, rng, read, sum(config.stream.gap_seconds) / 2)
    else:
        split = args.split or "testing"
        clips = list_clips(args.data, config.words, split, unknown_fraction=1.0)
        if args.official and clips.official is None:
            raise KwsError(f"{args.data}: no {OFFICIAL_LIST.format(split=split)} to take official speakers from")
        official = clips.official if args.official else [True] * len(clips.paths)
        by_word: dict = {}
        for path, target, keep in zip(clips.paths, clips.targets, official):
            if keep and clips.labels[target] in (UNKNOWN, *config.words):
                by_word.setdefault(path.parent.name, []).append(path)
        unknown = sorted(set(by_word) - set(config.words))
        picked = pick_clips(by_word, config.words, unknown, (args.minutes or 10.0) * 60,
                            config.stream, rng, read)
    if args.noise:
        noises, _ = load_audio_files(audio_files(args.noise), rate, "noise")
    else:
        noises, _ = load_noise(args.data, rate) if args.data else ([], [])
    audio, labels = build_stream(picked, noises, config.stream, rate, rng)
    with staged_together([args.out, labels_out]) as (wav, csv):  # both replaced, or neither
        write_wav(wav, audio, rate)
        write_labels(csv, labels)
    commands = sum(lab.word in config.words for lab in labels)
    print(f"{args.out}: {len(audio) / rate / 60:.1f} min, {commands} command words, "
          f"{len(labels) - commands} other clips or files, "
          + (f"noise at {config.stream.snr_db:g} dB SNR" if noises else "no background noise (--noise DIR adds some)"),
          file=sys.stderr)
    return 0
