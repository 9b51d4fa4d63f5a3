"""``kws listen``: detect keywords from a microphone, live, until Ctrl-C (or ``--duration``).

The command opens the device and the detector; the loop, where detections go and how lost
audio is reported, is ``kws.live``.
"""

from __future__ import annotations

import argparse
import sys

from kws.audio.microphone import Microphone, capture_rate, find_input_device
from kws.cli import add_detector_arguments, add_model_argument, detector_setup
from kws.config import Config
from kws.twostage import build_detector
from kws.live import Meter, Report, listen, note
from kws.units import block_samples

HELP = "detect keywords from the microphone, one line per detection"



def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_detector_arguments(parser)
    parser.add_argument("--device", metavar="DEVICE",
                        help="input device: index or part of its name (see `kws devices`; "
                             "default: audio.device in the config, else the system's default)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per detection on stdout, as `kws replay --json`")
    parser.add_argument("--exec", metavar="CMD", dest="exec_command",
                        help="run CMD through the shell for each detection, with KWS_WORD, "
                             "KWS_SCORE and KWS_TIME in its environment (its output goes to "
                             "stderr)")
    parser.add_argument("--meter", action="store_true",
                        help="draw a live input level meter on stderr (when stdout is a terminal)")
    parser.add_argument("--duration", type=_positive, metavar="SECONDS",
                        help="stop by itself after this many seconds")


def run(args: argparse.Namespace, config: Config) -> int:
    # The device first: a wrong --device is reported before seconds go into loading a model.
    device = find_input_device(args.device if args.device is not None else config.audio.device)
    rate = capture_rate(device, config.audio.sample_rate)
    config, bundle = detector_setup(args, config)
    detector = build_detector(bundle, config, input_rate=rate)
    meter = Meter(rate) if args.meter and sys.stdout.isatty() else None
    if args.meter and meter is None:
        note("no level meter: stdout is not a terminal")
    write = detector.write if meter is None else meter.tee(detector.write)
    microphone = Microphone(device, rate, block_samples(config.audio.block_ms, rate), write)
    resampled = "" if rate == config.audio.sample_rate else \
        f", resampled to {config.audio.sample_rate} Hz"
    note(f"input: {device}, {rate} Hz{resampled}")
    note(f"model: {bundle.path} ({'int8' if detector.int8 else 'float'}), hop {config.detector.hop_ms:g} ms")
    note("words: " + ", ".join(f"{w} ({t:.2f})" for w, t in detector.thresholds.items()))
    report = Report(json_lines=args.json, command=args.exec_command)
    listen(detector, microphone, report, meter=meter, duration=args.duration,
           stall_seconds=config.audio.stall_seconds)
    return 0
