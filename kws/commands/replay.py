"""``kws replay``: run audio files through the live detector, as if a microphone heard them."""

from __future__ import annotations

import argparse

from kws.audio.files import read_blocks
from kws.cli import add_detector_arguments, add_model_argument, detector_setup
from kws.config import Config
from kws.detector import Detector, format_detection, replay

HELP = "detect words in audio files, through exactly the path the microphone uses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (any rate, any format)")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per detection: {"time", "word", "score"}')
    parser.add_argument("--realtime", action="store_true",
                        help="feed audio at the speed a sound card would (default: as fast as possible)")


def run(args: argparse.Namespace, config: Config) -> int:
    config, bundle = detector_setup(args, config)
    # Open every file first: a typo in the last name should not cost a long replay.
    opened = [(path, *read_blocks(path, config.audio.block_ms)) for path in args.files]
    for path, rate, _, blocks in opened:
        detector = Detector.from_bundle(bundle, config, input_rate=rate)
        for detection in replay(detector, blocks, realtime=args.realtime):
            print(format_detection(detection, args.json, path if len(args.files) > 1 else None),
                  flush=True)
    return 0
