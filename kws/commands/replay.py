"""``kws replay``: run audio files through the live detector, as if a microphone heard them.

It goes through the Python API (``kws.Spotter.replay``), as a Python user would."""

from __future__ import annotations

import argparse
import json
import sys

from kws.audio.files import STDIN, AudioFileError, read_blocks
from kws.cli import add_detector_arguments, add_model_argument, add_near_miss_argument, detector_setup
from kws.config import Config
from kws.detector import format_detection
from kws.errors import KwsError

HELP = "detect words in audio files, through exactly the path the microphone uses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (any rate, any format libsndfile reads; - reads one "
                             "from stdin)")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per detection: {"file", "time", "word", "score"}; a '
                             'file without any: {"file", "detections": 0}')
    parser.add_argument("--realtime", action="store_true",
                        help="feed audio at the speed a sound card would (default: as fast as possible)")
    parser.add_argument("--view", action="store_true",
                        help="draw each file in a live view in the terminal (with --realtime, at "
                             "the pace it was spoken; plain lines when stdout is not a terminal)")
    add_near_miss_argument(parser)


def near_miss_line(miss, as_json: bool, source: str | None = None) -> str:
    """A near miss as ``format_detection`` writes a detection, marked as such."""
    if as_json:
        record = {"time": round(miss.time, 3), "word": miss.word, "score": round(miss.score, 4),
                  "threshold": round(miss.threshold, 4), "near_miss": True}
        return json.dumps(record if source is None else {"file": source, **record})
    line = f"{miss.time:9.3f}  {miss.word:<8} {miss.score:.3f}  near miss (threshold {miss.threshold:.3f})"
    return line if source is None else f"{source}: {line}"


def run(args: argparse.Namespace, config: Config) -> int:
    """Each file ends with a window of silence (so a last word, or a clip shorter than a
    second, is heard). A file that gave no detection says so: a note on stderr, and with
    ``--json`` a line ``{"file", "detections": 0}`` on stdout, so a reader can tell "nothing
    heard" from "not processed"."""
    from kws.api import Spotter

    if args.files.count(STDIN) > 1:
        raise KwsError("- (standard input) can be given once")
    if args.view and args.json:
        raise KwsError("--view draws the detections itself: leave out --json")
    config, _ = detector_setup(args, config)  # --threshold checked against the model's words
    spotter = Spotter(config=config)
    # Open every file first: a typo in the last name is said before a long replay. Of several,
    # one that cannot be read is said and skipped, the others replayed; the exit status says so.
    opened, unreadable = [], []
    several = len(args.files) > 1
    for path in args.files:
        try:
            opened.append((path, *read_blocks(path, config.audio.block_ms)))
        except AudioFileError as err:
            if not several:
                raise
            unreadable.append(path)
            print(f"kws: warning: {err}; skipped", file=sys.stderr, flush=True)
    for path, rate, _, blocks in opened:
        updates = spotter.replay(blocks, rate, realtime=args.realtime, pad=True)
        if args.view:
            from kws.view import view

            count = view(updates, title=path).count
        else:
            count = 0
            # JSON names the file every time (the same keys for one file or many); text only
            # when there are several.
            source = path if several or args.json else None
            for update in updates:
                events = [*((d.time, 0, format_detection(d, args.json, source)) for d in update.detections),
                          *((m.time, 1, near_miss_line(m, args.json, source))
                            for m in (update.near_misses if args.near_misses else []))]
                for _, _, line in sorted(events, key=lambda e: e[:2]):
                    print(line, flush=True)
                count += len(update.detections)
        if not count:
            print(f"kws: {path}: no detection", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps({"file": path, "detections": 0}), flush=True)
    if unreadable:
        raise KwsError(f"{len(unreadable)} of {len(args.files)} files could not be read (said above): "
                       f"{', '.join(unreadable)}")
    return 0
