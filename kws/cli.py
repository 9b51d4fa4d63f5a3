"""The ``kws`` command.

Each subcommand lives in ``kws/commands/<name>.py`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args, config) -> int``; the helpers they share (``--model``,
the detector flags, JSON lines) live here. Command modules import nothing heavy at module
level, so ``kws listen`` starts fast; only ``kws train`` reaches the training package, through
one import inside ``kws.commands.train.run``.

Errors the user can act on (``KwsError``) print one line, ``kws: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

from kws import __version__
from kws.bundle import Bundle, load_bundle
from kws.config import Config, load_config, with_overrides
from kws.errors import KwsError
from kws.posterior import uniform_threshold

# The runtime install leaves these out (see pyproject.toml); a command that needs one says so
# in one line. kws_train is the training package itself (the folder train/).
TRAINING_ONLY = {"kws_train", "tensorflow", "keras", "librosa", "tensorboard"}

# name -> module; order is the order of `kws --help`.
COMMANDS = {
    "listen": "kws.commands.listen",
    "devices": "kws.commands.devices",
    "replay": "kws.commands.replay",
    "make-stream": "kws.commands.make_stream",
    "eval-stream": "kws.commands.eval_stream",
    "bench": "kws.commands.bench",
    "train": "kws.commands.train",
    "eval": "kws.commands.eval",
    "enroll": "kws.commands.enroll",
    "record": "kws.commands.record",
}


def build_parser() -> argparse.ArgumentParser:
    config_help = "config file laid over the defaults (config.yaml)"
    parser = argparse.ArgumentParser(
        prog="kws", description="Streaming, offline keyword spotting on Speech Commands words.")
    parser.add_argument("--config", metavar="FILE", help=config_help)
    # Also accepted after the command; SUPPRESS keeps an absent one from erasing `kws --config F cmd`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    parser.add_argument("--version", action="version", version=f"kws {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built into this version
        cmd = sub.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model DIR``, shared by every command that loads a bundle."""
    parser.add_argument("--model", metavar="DIR",
                        help="model bundle directory (default: detector.model in the config)")


def model_overrides(args: argparse.Namespace) -> dict:
    """Config overrides for ``--model``; a path on the command line is relative to the cwd."""
    model = getattr(args, "model", None)
    return {"detector.model": str(Path(model).resolve()) if model else None}


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``eval-stream``: hop, chunk size, one threshold for every word."""
    parser.add_argument("--hop-ms", type=float, metavar="MS", help="classifier hop (default: detector.hop_ms)")
    parser.add_argument("--block-ms", type=float, metavar="MS",
                        help="chunk size pushed in, as a sound card delivers (default: audio.block_ms)")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="one threshold for every word (default: per word, from bundle/config)")


def detector_setup(args: argparse.Namespace, config: Config) -> tuple[Config, Bundle]:
    """Apply the shared flags; return ``(config, bundle)`` ready for ``Detector``."""
    config = with_overrides(config, {**model_overrides(args), "detector.hop_ms": args.hop_ms,
                                     "audio.block_ms": args.block_ms})
    if config.audio.block_ms >= 1000 * config.audio.ring_seconds:
        raise KwsError(f"blocks of {config.audio.block_ms:g} ms do not fit the ring buffer "
                       f"(audio.ring_seconds: {config.audio.ring_seconds:g})")
    bundle = load_bundle(config.model_path, config)
    return uniform_threshold(config, bundle.words, args.threshold), bundle


def json_line(value) -> str:
    """``value`` as one line of JSON: NaN (an undefined figure) becomes null, numpy scalars numbers."""
    return json.dumps(_json_safe(value))


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config: Config = load_config(args.config)
        return int(args.run(args, config) or 0)
    except KwsError as err:
        print(f"kws: error: {err}", file=sys.stderr)
        return err.exit_code
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TRAINING_ONLY:
            raise
        print(f"kws: error: `kws {args.command}` needs the training extras ({err.name} is not "
              "installed): pip install -e '.[train]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kws: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: the reader left, not an error worth a traceback.
        sys.stderr.close()
        return 0
