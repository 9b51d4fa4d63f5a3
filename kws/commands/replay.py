"""``kws replay``: run audio files through the live detector, as if a microphone heard them."""

from __future__ import annotations

import argparse
import json
import sys

from kws.audio.files import STDIN, read_blocks
from kws.cli import add_detector_arguments, add_model_argument, detector_setup
from kws.config import Config
from kws.detector import format_detection, replay
from kws.twostage import build_detector
from kws.errors import KwsError

HELP = "detect words in audio files, through exactly the path the microphone uses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (any rate, any format libsndfile reads; - reads one "
                             "from stdin)")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per detection: {"time", "word", "score"}')
    parser.add_argument("--realtime", action="store_true",
                        help="feed audio at the speed a sound card would (default: as fast as possible)")


def run(args: argparse.Namespace, config: Config) -> int:
    """Each file ends with a window of silence (so a last word, or a clip shorter than a
    second, is heard). A file that gave no detection says so: a note on stderr, and with
    ``--json`` a line ``{"file", "detections": 0}`` on stdout, so a reader can tell "nothing
    heard" from "not processed"."""
    if args.files.count(STDIN) > 1:
        raise KwsError("- (standard input) can be given once")
    config, bundle = detector_setup(args, config)
    # Open every file first: a typo in the last name should not cost a long replay.
    opened = [(path, *read_blocks(path, config.audio.block_ms)) for path in args.files]
    several = len(args.files) > 1
    for path, rate, _, blocks in opened:
        detector = build_detector(bundle, config, input_rate=rate)
        count = 0
        for detection in replay(detector, blocks, realtime=args.realtime, pad=True):
            count += 1
            print(format_detection(detection, args.json, path if several else None), flush=True)
        if not count:
            print(f"kws: {path}: no detection", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps({"file": path, "detections": 0}), flush=True)
    return 0
