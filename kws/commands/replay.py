"""``kws replay``: run audio files through the live detector, as if a microphone heard them."""

from __future__ import annotations

import argparse
import json

from kws.bundle import load_bundle
from kws.cli import add_model_argument, model_overrides
from kws.config import Config, with_overrides
from kws.errors import KwsError
from kws.detector import Detection, Detector, replay
from kws.audio.files import read_blocks
from kws.posterior import uniform_threshold

HELP = "detect words in audio files, through exactly the path the microphone uses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (any rate, any format)")
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per detection: {"time", "word", "score"}')
    parser.add_argument("--realtime", action="store_true",
                        help="feed audio at the speed a sound card would (default: as fast as possible)")


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``eval-stream``: hop, chunk size, one threshold for every word."""
    parser.add_argument("--hop-ms", type=float, metavar="MS", help="classifier hop (default: detector.hop_ms)")
    parser.add_argument("--block-ms", type=float, metavar="MS",
                        help="chunk size pushed in, as a sound card delivers (default: audio.block_ms)")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="one threshold for every word (default: per word, from bundle/config)")


def detector_setup(args: argparse.Namespace, config: Config):
    """Apply the shared flags; return ``(config, bundle)`` ready for ``Detector``."""
    config = with_overrides(config, {**model_overrides(args), "detector.hop_ms": args.hop_ms,
                                     "audio.block_ms": args.block_ms})
    if config.audio.block_ms >= 1000 * config.audio.ring_seconds:
        raise KwsError(f"blocks of {config.audio.block_ms:g} ms do not fit the ring buffer "
                       f"(audio.ring_seconds: {config.audio.ring_seconds:g})")
    bundle = load_bundle(config.model_path, config)
    return uniform_threshold(config, bundle.words, args.threshold), bundle


def run(args: argparse.Namespace, config: Config) -> int:
    config, bundle = detector_setup(args, config)
    # Open every file first: a typo in the last name should not cost a long replay.
    opened = [(path, *read_blocks(path, config.audio.block_ms)) for path in args.files]
    for path, rate, _, blocks in opened:
        detector = Detector(bundle, config, input_rate=rate)
        for detection in replay(detector, blocks, realtime=args.realtime):
            print(format_detection(detection, args.json, path if len(args.files) > 1 else None),
                  flush=True)
    return 0


def format_detection(d: Detection, as_json: bool, source: str | None = None) -> str:
    """One output line: aligned text, or a JSON object (with ``file`` when replaying several)."""
    if as_json:
        record = {"time": round(d.time, 3), "word": d.word, "score": round(d.score, 4)}
        return json.dumps(record if source is None else {"file": source, **record})
    line = f"{d.time:9.3f}  {d.word:<8} {d.score:.3f}"
    return line if source is None else f"{source}: {line}"
