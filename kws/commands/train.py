"""``kws train``: train a model on Speech Commands and write a bundle (needs TensorFlow).

The one door from the runtime to the trainer: ``run`` imports ``kws_train.main`` (the folder
``train/``, installed with ``pip install -e '.[train]'``), and nothing else in ``kws`` imports
``kws_train``. Without the training extras ``kws.cli`` says so in one line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kws.bundle import check_bundle_target
from kws.cli import count_argument, debugging, require_extras
from kws.config import ARCHITECTURES, Config, with_overrides
from kws.errors import KwsError
from kws.quiet import quiet_tensorflow
from kws.writes import check_target

HELP = "train a keyword model on a Speech Commands directory and write a model bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="Speech Commands root (default: train.data)")
    parser.add_argument("--arch", metavar="NAME",
                        help=f"{' | '.join(ARCHITECTURES)} (default: train.arch)")
    parser.add_argument("--epochs", type=int, metavar="N", help="default: train.epochs")
    parser.add_argument("--out", metavar="DIR", required=True, help="bundle directory to write")
    parser.add_argument("--seed", type=count_argument, help="default: train.seed")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --workdir after its last finished epoch")
    parser.add_argument("--workdir", metavar="DIR",
                        help="checkpoints, logs and reports (default: runs/<name of --out>)")
    parser.add_argument("--threads", type=count_argument, default=0, metavar="N",
                        help="TensorFlow threads (default: all cores)")


def run(args: argparse.Namespace, config: Config) -> int:
    config = with_overrides(config, {
        "train.data": str(Path(args.data).resolve()) if args.data else None,
        "train.arch": args.arch, "train.epochs": args.epochs, "train.seed": args.seed})
    if config.train.data is None:
        raise KwsError("no training data: pass --data DIR or set train.data in the config")
    data = Path(config.train.data)
    if not data.is_dir():  # before the seconds TensorFlow takes to import
        raise KwsError(f"{data}: no such dataset directory")
    require_extras("kws_train", "keras", "tensorflow")
    # Before TensorFlow and hours of training: --out must be writable, and never anything but a
    # kws bundle is replaced; the data must hold readable clips of at least two classes.
    check_bundle_target(args.out)
    workdir = Path(args.workdir) if args.workdir else Path("runs") / Path(args.out).name
    check_target(workdir, "--workdir", directory=True)
    from kws.data.speech_commands import check_training_classes  # and tqdm: not for every command's start-up

    check_training_classes(data, config)

    if args.threads:
        # Read by TensorFlow when its runtime starts, which in a cluster (TF_CONFIG) happens
        # before set_threads could run: so set them before TensorFlow is imported.
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(args.threads)
    if not debugging(args):
        with quiet_tensorflow():
            import tensorflow  # noqa: F401  (loaded here, its start-up chatter muted)
    # The one import of the training package in kws (kws.cli turns its absence into one line).
    from kws_train.main import set_threads, train_bundle

    set_threads(args.threads)
    train_bundle(config, data, args.out, workdir, resume=args.resume)
    return 0
