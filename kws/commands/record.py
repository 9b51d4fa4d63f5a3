"""``kws record WORD --count N --out DIR``: your own takes of a word, for ``kws enroll --recordings``.

One prompt at a time: a countdown, then ``speak now`` and a level meter while it records
``--seconds``; each take is trimmed to the speech in it (``kws.eval.testaudio.speech_bounds``
plus a margin) and written as ``DIR/<word>-<NN>.wav`` (16 kHz mono; numbering continues after
the takes already there). A take with nothing in it is not kept and is asked for again; a take
that is too quiet, clipped or longer than a second is kept with a warning (delete it and record
again if you like). The microphone pieces are the ones ``kws listen`` uses: ``Microphone``,
the ring buffer, ``kws.live.Meter``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.errors import KwsError
from kws.labels import clean_word
from kws.writes import check_target, staged

HELP = "record your own takes of a word from the microphone (for kws enroll --recordings)"

EMPTY_PEAK = 10 ** (-50 / 20)    # below -50 dBFS at its loudest: nothing was said
QUIET_PEAK = 10 ** (-26 / 20)    # below -26 dBFS: usable, but too quiet
CLIP_LEVEL = 0.999
CLIP_SHARE = 0.001               # share of samples at full scale that counts as clipped
MARGIN_S = 0.1                   # kept around the speech
RETRIES = 3                      # empty takes in a row before giving up


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("word", metavar="WORD", help="the word or short phrase to say")
    parser.add_argument("--count", type=int, required=True, metavar="N", help="takes to keep")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the takes")
    parser.add_argument("--device", metavar="N|NAME", help="input device (default: audio.device or "
                        "the system default; see kws devices)")
    parser.add_argument("--seconds", type=float, default=2.0, metavar="S",
                        help="recording time per take (default: 2)")
    parser.add_argument("--countdown", type=int, default=3, metavar="S",
                        help="seconds counted down before each take (default: 3)")


def slug(word: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", word.lower()).strip("_")


def check_take(audio: np.ndarray, rate: int) -> tuple[np.ndarray | None, list[str]]:
    """``(trimmed take or None when empty, warnings)``."""
    from kws.eval.testaudio import speech_bounds

    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < EMPTY_PEAK:
        return None, [f"empty take: nothing heard (peak {_db(peak)} dBFS); is the microphone muted?"]
    start, end = speech_bounds(audio, rate)
    margin = round(MARGIN_S * rate)
    take = audio[max(0, start - margin):min(len(audio), end + margin)]
    warnings = []
    if peak < QUIET_PEAK:
        warnings.append(f"too quiet (peak {_db(peak)} dBFS): speak up or move closer")
    if np.mean(np.abs(audio) >= CLIP_LEVEL) > CLIP_SHARE:
        warnings.append("clipped: the input is overloaded; move back or lower the input gain")
    if (end - start) / rate > 1.0:
        warnings.append(f"{(end - start) / rate:.1f} s of sound: the spotter hears one second; say it "
                        "on its own, a little faster")
    if start == 0 or end >= len(audio):
        warnings.append("the sound touches the edge of the take: wait for 'speak now' and finish in time")
    return take, warnings


def _db(x: float) -> str:
    return f"{20 * np.log10(max(x, 1e-10)):.0f}"


def _say(text: str) -> None:
    print(f"kws: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, config: Config) -> int:
    from kws.audio.files import resample, write_wav
    from kws.audio.microphone import Microphone, capture_rate, find_input_device
    from kws.audio.ring import RingBuffer
    from kws.live import Meter

    word = clean_word(args.word, "record")  # the words kws enroll takes
    if args.count < 1:
        raise KwsError("--count must be at least 1")
    if not 0.5 <= args.seconds <= 10:
        raise KwsError("--seconds must be between 0.5 and 10")
    if args.countdown < 0:
        raise KwsError("--countdown must not be negative")
    # Nothing is created before the first take is kept (a failed start leaves no folder).
    out = check_target(args.out, "--out", directory=True)
    pattern = re.compile(rf"{re.escape(slug(word))}-(\d+)\.wav")
    taken = [int(m.group(1)) for p in (out.iterdir() if out.is_dir() else ()) if (m := pattern.fullmatch(p.name))]
    number = max(taken, default=0)

    target = config.audio.sample_rate
    device = find_input_device(args.device if args.device is not None else config.audio.device)
    rate = capture_rate(device, target)
    ring = RingBuffer(int(rate * (args.seconds + args.countdown + 2)))
    # A meter redraws a line in place: on a terminal only, never into a log.
    meter = Meter(rate) if sys.stderr.isatty() else None
    block = max(1, rate // 100)
    saved: list[Path] = []
    with Microphone(device, rate, block, ring.write if meter is None else meter.tee(ring.write)) as mic:
        _say(f"recording {args.count} takes of {word!r} from {device} into {out}")
        empty = 0
        while len(saved) < args.count:
            _say(f"take {len(saved) + 1}/{args.count}: say {word!r} after the countdown")
            for left in range(args.countdown, 0, -1):
                _say(f"  {left}..")
                time.sleep(1.0)
            ring.read_into(np.zeros(len(ring), np.float32))  # what came before the prompt
            _say("  speak now")
            audio = np.zeros(round(args.seconds * rate), np.float32)
            got = 0
            deadline = time.monotonic() + args.seconds + 2.0
            while got < len(audio):
                if mic.device_lost or time.monotonic() > deadline:
                    if meter:
                        meter.clear()
                    raise KwsError(f"input device {device} stopped delivering audio")
                ring.wait(0.05)
                got += ring.read_into(audio[got:])
                if meter:
                    meter.draw()
            if meter:
                meter.clear()
            audio = resample(audio, rate, target)
            take, warnings = check_take(audio, target)
            for warning in warnings:
                _say(f"  warning: {warning}")
            if take is None:
                empty += 1
                if empty >= RETRIES:
                    raise KwsError(f"{RETRIES} empty takes in a row: nothing reaches the microphone "
                                   f"{device} (muted, or the wrong --device?)")
                _say("  again")
                continue
            empty = 0
            number += 1
            path = out / f"{slug(word)}-{number:02d}.wav"
            with staged(path) as staging:  # a take is on disk whole, or not at all
                write_wav(staging, take, target)
            saved.append(path)
            _say(f"  kept {path.name}: {len(take) / target:.2f} s, peak "
                 f"{_db(float(np.max(np.abs(take))))} dBFS")
    _say(f"{len(saved)} takes of {word!r} in {out}; use them with: kws enroll {word!r} --out MODEL "
         f"--recordings {out}")
    return 0
