"""``kws devices``: the input devices ``kws listen --device`` can choose from, with the rates
each really opens at (asked of PortAudio, not its advertised default) and the one
``kws listen`` will record at."""

from __future__ import annotations

import argparse

from kws.audio.microphone import capture_rate, input_devices, open_rates
from kws.config import Config

HELP = "list input devices (the default is marked with *) and the rates they really open at"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: Config) -> int:
    wanted = config.audio.sample_rate
    for device in input_devices():
        mark = "*" if device.is_default else " "
        rates = open_rates(device, (wanted, 44100, 48000))
        opens = ", ".join(f"{rate:,}" for rate in rates) if rates else "none of the usual rates"
        used = capture_rate(device, wanted)
        listen = f"kws listen records at {used:,} Hz" + \
            ("" if used == wanted else f", resampled to {wanted:,} Hz")
        print(f"{mark} {device.index:>3}  {device.name}  ({device.host_api}, {device.channels} ch)"
              f"\n        opens at: {opens} Hz (default {device.default_rate:,} Hz); {listen}")
    return 0
