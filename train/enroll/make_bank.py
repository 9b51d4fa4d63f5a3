"""Make the enrolment bank (``kws_train.enroll.bank``) of a base model: its activations of
running speech and of people saying words, written where ``kws enroll`` finds it.

    python -m kws_train.enroll.make_bank --speech DIR [DIR ...] --words DIR [--base DIR] [--out FILE]

A module of its own: ``python -m`` on ``bank``, which the package imports, would load it twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kws.config import load_config
from kws.errors import KwsError
from kws_train.enroll.bank import BANK, COMMAND, build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("--speech", nargs="+", required=True, metavar="DIR",
                        help="folders of running speech (a transcripts.tsv beside them gives splits and leaves "
                             "out one-word utterances)")
    parser.add_argument("--words", metavar="DIR", help="Speech Commands root: people saying words, and noise")
    parser.add_argument("--base", metavar="DIR", help="the bundle the bank is for (default: the config's model)")
    parser.add_argument("--out", default=str(BANK), metavar="FILE")
    parser.add_argument("--megabytes", type=float, default=5.0, help="about the bank's size (default 5)")
    parser.add_argument("--config", metavar="YAML")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        folders = [Path(p) for p in args.speech]
        for folder in folders + ([Path(args.words)] if args.words else []):
            if not folder.is_dir():
                raise KwsError(f"{folder}: no such folder")
        meta = build(config, Path(args.base or config.model_path), folders, Path(args.words) if args.words else None,
                     Path(args.out), args.megabytes)
    except KwsError as err:
        print(f"{COMMAND}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    size = Path(args.out).stat().st_size / 1e6
    print(f"{args.out}: {size:.1f} MB, backbone {meta['fingerprint']} ({meta['base']}), {meta['seconds']} s")
    for part, n in meta["rows"].items():
        print(f"  {part:20s} {n['rows']:6d} rows, {n['speakers']:4d} speakers")


if __name__ == "__main__":
    main()
