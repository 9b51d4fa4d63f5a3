"""``kws devices``: the input devices ``kws listen --device`` can choose from."""

from __future__ import annotations

import argparse

from kws.audio.microphone import input_devices
from kws.config import Config

HELP = "list input devices (the default is marked with *)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: Config) -> int:
    for device in input_devices():
        mark = "*" if device.is_default else " "
        print(f"{mark} {device.index:>3}  {device.name}  ({device.host_api}, "
              f"{device.channels} ch, {device.default_rate} Hz)")
    return 0
