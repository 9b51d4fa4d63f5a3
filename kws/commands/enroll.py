"""``kws enroll WORD [WORD ...] --out DIR``: a spotter for your own words, trained here in minutes.

Starts from the shipped model's trained layers (transfer learning): the word said by many
synthetic voices (and your recordings, ``kws record``), against other words, near-words,
running speech and noise, trains a small head; the bundle it writes works with ``kws listen
--model DIR`` and ``kws replay --model DIR``. Real people come from the enrolment bank kws ships
(``--bank``; ``kws_train.enroll.bank``), so no data folder is needed; ``--data`` and
``--negatives`` add more, and the report warns, one line each, where real audio was missing
or thin. Needs the training extras (TensorFlow): the one import of ``kws_train`` is inside
``run``, as in ``kws train``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kws.bundle import check_bundle_target
from kws.cli import count_argument, debugging, json_line, require_extras
from kws.config import Config
from kws.errors import KwsError
from kws.quiet import quiet_tensorflow
from kws.resources import is_bundle

HELP = "train a spotter for your own word(s) from synthetic voices and your recordings"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="+", metavar="WORD",
                        help="word or short phrase to spot (quote a phrase: \"hey kws\")")
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write")
    parser.add_argument("--recordings", metavar="DIR",
                        help="your own takes (kws record): every audio file for one word; "
                             "DIR/<word>/ or files named <word>... for several")
    parser.add_argument("--with-commands", action="store_true",
                        help="keep the ten Speech Commands words in the same bundle (needs --data)")
    parser.add_argument("--data", metavar="DIR",
                        help="Speech Commands root: its other words said by people as negatives, its noise "
                             "(optional; --with-commands needs it)")
    parser.add_argument("--negatives", metavar="DIR",
                        help="folder of people talking without the word, e.g. LibriSpeech (optional, and "
                             "fewer false alarms: its training split trains, its validation split sets "
                             "thresholds)")
    parser.add_argument("--bank", metavar="FILE",
                        help="enrolment bank: real people talking and saying other words, as the base model "
                             "sees them; trains and checks the spotter with no data folder (default: the one "
                             "kws ships, where it fits the base model; none: without)")
    parser.add_argument("--engines", metavar="LIST",
                        help="speech engines, comma-separated (default: pico,festival,flite,espeak, "
                             "those installed; `make voices` installs them all)")
    parser.add_argument("--budget", choices=["normal", "tiny"], default="normal",
                        help="normal (a few minutes) or tiny (seconds: a first look, tests)")
    parser.add_argument("--tune-epochs", type=int, metavar="N",
                        help="epochs fine-tuning the base model's last block with the head "
                             "(default: the budget's)")
    parser.add_argument("--seed", type=count_argument, default=0)
    parser.add_argument("--base", metavar="DIR",
                        help="bundle whose trained layers are reused (default: detector.model)")
    parser.add_argument("--cache", metavar="DIR",
                        help="synthetic clip cache (default: a folder in the system temp dir)")
    parser.add_argument("--threads", type=count_argument, default=0, metavar="N",
                        help="TensorFlow threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json-progress", action="store_true",
                        help='progress as JSON lines on stdout, {"stage", "done"} (done: 0 to 1), '
                             "instead of a bar: for a program to follow (the page of kws serve --http)")


def _folder(given: str | None) -> str | None:
    if given is not None and not Path(given).is_dir():
        raise KwsError(f"{given}: no such folder")
    return given


def json_progress():
    """``report(stage, done)`` for ``enroll``: a JSON line on stdout at each stage and each
    percent of the work (finer steps would only flood the reader)."""
    last = {"stage": None, "done": -1.0}

    def report(stage: str, done: float) -> None:
        if stage != last["stage"] or done >= last["done"] + 0.01:
            last.update(stage=stage, done=done)
            print(json_line({"stage": stage, "done": round(done, 3)}), flush=True)

    return report


def run(args: argparse.Namespace, config: Config) -> int:
    check_bundle_target(args.out)  # before TensorFlow and minutes of work
    engines = None
    if args.engines is not None:
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        if not engines:
            raise KwsError("--engines is empty")
    data, negatives = _folder(args.data), _folder(args.negatives)
    if args.bank not in (None, "none") and not Path(args.bank).is_file():
        raise KwsError(f"{args.bank}: no such enrolment bank")

    # The one import of the training package here (kws.cli turns its absence into one line).
    from kws_train.enroll import BANK, check_inputs, enroll, format_report, summary_line

    check_inputs(args.words, args.out, args.recordings, args.with_commands, data)
    if engines is not None:
        from kws_train.synth import check_engines

        check_engines(engines)  # now, not after TensorFlow has loaded
    if args.base is not None and not is_bundle(Path(args.base)):
        raise KwsError(f"--base {args.base}: not a model bundle (no metadata.json); give one kws train "
                       "or kws enroll wrote")
    require_extras("keras", "tensorflow")  # found, not imported: before minutes of synthesis
    if not debugging(args):
        with quiet_tensorflow():
            import tensorflow  # noqa: F401  (loaded here, its start-up chatter muted)
    report = enroll(config, args.words, args.out, recordings=args.recordings,
                    with_commands=args.with_commands, data=data, negatives=negatives,
                    engines=engines, budget=args.budget, seed=args.seed, cache=args.cache,
                    base=args.base, progress=json_progress() if args.json_progress else not args.no_progress,
                    threads=args.threads, tune_epochs=args.tune_epochs,
                    bank=None if args.bank == "none" else args.bank or BANK)
    print(format_report(report))
    print(f"kws: {summary_line(report)}")
    for warning in report["warnings"]:
        print(f"kws: warning: {warning}", file=sys.stderr)
    print(f"kws: try it: kws listen --model {args.out}")
    return 0
