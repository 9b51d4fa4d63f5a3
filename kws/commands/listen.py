"""``kws listen``: detect keywords from a microphone, live, until Ctrl-C (or ``--duration``).

The command opens the device and a ``kws.Spotter`` (the Python API, so the command line and
Python detect alike); the loop, where detections go and how lost audio is reported, is
``kws.live``; ``--view`` draws ``Spotter.listen_updates`` with ``kws.view``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from kws.audio.microphone import Microphone, capture_rate, find_input_device
from kws.cli import (add_detector_arguments, add_model_argument, add_near_miss_argument, detector_setup,
                     positive_argument)
from kws.config import Config
from kws.errors import KwsError
from kws.live import Meter, Report, _stop_on_signals, listen, note, summary
from kws.units import block_samples

HELP = "detect keywords from the microphone, one line per detection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--device", metavar="DEVICE",
                        help="input device: index or part of its name (see `kws devices`; "
                             "default: audio.device in the config, else the system's default)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per detection on stdout: {"time" (stream seconds), "word", '
                             '"score", "clock" (wall-clock time, ISO 8601)}')
    parser.add_argument("--exec", metavar="CMD", dest="exec_command",
                        help="run CMD through the shell for each detection, with KWS_WORD, KWS_SCORE, "
                             "KWS_TIME (stream seconds) and KWS_CLOCK (the wall clock, ISO 8601) in its "
                             "environment (its output goes to stderr)")
    parser.add_argument("--meter", action="store_true",
                        help="draw a live input level meter on stderr (when stdout is a terminal)")
    parser.add_argument("--view", action="store_true",
                        help="draw a live view in the terminal: input level, each word's score "
                             "against its threshold, the last detections (plain lines when "
                             "stdout is not a terminal)")
    add_near_miss_argument(parser)
    parser.add_argument("--duration", type=positive_argument, metavar="SECONDS",
                        help="stop by itself after this many seconds")


def near_miss_note(miss) -> None:
    """``kws: near miss: up 0.81 < 0.99`` on stderr: the score cut (not rounded) to two
    digits, so it never reads as its threshold."""
    note(f"near miss: {miss.word} {math.floor(miss.score * 100) / 100:.2f} < {miss.threshold:g}")


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.api import Spotter

    if args.view:
        clash = [flag for flag, given in (("--json", args.json), ("--exec", args.exec_command),
                                          ("--meter", args.meter)) if given]
        if clash:
            raise KwsError(f"--view draws the detections itself: leave out {', '.join(clash)}")
    # The device first: a wrong --device is reported before seconds go into loading a model.
    device = find_input_device(args.device if args.device is not None else config.audio.device)
    rate = capture_rate(device, config.audio.sample_rate)
    config, bundle = detector_setup(args, config)  # --threshold checked against the model's words
    spotter = Spotter(config=config, sample_rate=rate,
                      on_near_miss=near_miss_note if args.near_misses and not args.view else None)
    detector = spotter.detector
    for line in header(device, rate, config, bundle.path, detector):
        note(line)
    if args.view:
        return _view(spotter, device, args.duration)
    meter = Meter(rate) if args.meter and sys.stdout.isatty() else None
    if args.meter and meter is None:
        note("no level meter: stdout is not a terminal")
    write = detector.write if meter is None else meter.tee(detector.write)
    microphone = Microphone(device, rate, block_samples(config.audio.block_ms, rate), write)
    report = Report(json_lines=args.json, command=args.exec_command)
    listen(detector, microphone, report, meter=meter, duration=args.duration,
           stall_seconds=config.audio.stall_seconds)
    return 0


def header(device, rate: int, config: Config, model: Path, detector) -> list[str]:
    """What ``kws listen`` says before it listens: the input, the model (relative to the working
    folder when inside it), each word's threshold to three decimals (0.999 is not 1.00)."""
    resampled = "" if rate == config.audio.sample_rate else f", resampled to {config.audio.sample_rate} Hz"
    model = Path(os.path.relpath(model)) if Path(model).resolve().is_relative_to(Path.cwd().resolve()) else model
    return [f"input: {device}, {rate} Hz{resampled}",
            f"model: {model} ({'int8' if detector.int8 else 'float'}), hop {config.detector.hop_ms:g} ms",
            "words: " + ", ".join(f"{w} ({t:.3f})" for w, t in detector.thresholds.items())]


def _view(spotter, device, duration: float | None) -> int:
    """``kws listen --view``: until Ctrl-C/SIGTERM (exit 0) or ``duration``, then the summary."""
    from kws.view import view

    started = time.monotonic()
    report = Report()  # off a terminal, listen's own lines (not replay's)
    with _stop_on_signals() as stop:
        state = view(spotter.listen_updates(device.index, duration, stop=stop),
                     title=f"kws listen {device.name}", lines=lambda u: [*map(report.line, u.detections)])
    note(summary(time.monotonic() - started, state.count, spotter.detector, spotter.microphone))
    return 0
