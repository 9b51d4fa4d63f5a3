"""The ``kws`` command.

Each subcommand lives in ``kws/commands/<name>.py`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args, config) -> int``; the helpers they share (``--model``,
the detector flags, JSON lines) live here. Command modules import nothing heavy at module
level, so ``kws listen`` starts fast; only ``kws train`` and ``kws enroll`` reach the training
package, each through one import inside its ``run`` (``kws.commands.train``, ``kws.commands.enroll``).

Errors the user can act on (``KwsError``) print one line, ``kws: error: ...``, and exit 2.
``main`` is the one place that rule lives: *every* exception a command lets out (an unwritable
output, a library's own error, a bug) ends as one line and exit 2, so a new failure mode cannot
leak a traceback. ``--debug`` (before the command) or ``KWS_DEBUG=1`` re-raises instead, for bug
reports.
"""

from __future__ import annotations

import argparse
import importlib
import errno
import os
import sys
from pathlib import Path

from kws import __version__
from kws.bundle import Bundle, load_bundle
from kws.config import Config, load_config, with_overrides
from kws.errors import KwsError
from kws.posterior import parse_thresholds, with_thresholds
from kws.resources import find_model, install_hint

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
    "serve": "kws.commands.serve",
}


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line as every other kws error (not the whole usage
    first): ``kws: error: argument --threshold: up: 2 is not ... (see kws replay --help)``."""

    def error(self, message: str):
        self.exit(2, f"kws: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``kws`` parser. Given the command line, only the named command's module is imported
    (the others get an empty subparser): importing all ten cost ~0.1 s of every start-up."""
    chosen = _command_in(sys.argv[1:] if argv is None else argv)
    config_help = "config file laid over the defaults (config.yaml)"
    parser = Parser(
        prog="kws", description="Streaming, offline keyword spotting on Speech Commands words.")
    parser.add_argument("--config", metavar="FILE", help=config_help)
    # Also accepted after the command; SUPPRESS keeps an absent one from erasing `kws --config F cmd`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    parser.add_argument("--version", action="version", version=f"kws {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show a full traceback on errors (as KWS_DEBUG=1 does)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if chosen is not None and name != chosen:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command named on the command line, or None (``kws --help``, a typo)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model DIR``, shared by every command that loads a bundle."""
    parser.add_argument("--model", metavar="DIR", action=_Once,
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
    parser.add_argument("--threshold", type=threshold_argument, metavar="T",
                        help="0.8 for every word, or per word: up=0.9,off=0.8 (the other words "
                             "keep theirs; default: per word, from the config, else the bundle)")


def threshold_argument(text: str) -> dict[str, float] | float:
    """``--threshold``'s value (``kws.posterior.parse_thresholds``), as argparse wants errors."""
    try:
        return parse_thresholds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_argument(text: str) -> float:
    """A number above 0 (``--duration``), as argparse wants errors."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


class _Once(argparse.Action):
    """An option that may be given once: a second one is an error, not silently the one used."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, "given twice; one per run")
        setattr(namespace, self.dest, values)


def count_argument(text: str) -> int:
    """A whole number, 0 or more (``--seed``, ``--threads``): a negative one is an error here,
    not a crash deep in numpy or TensorFlow after the work has begun."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_near_miss_argument(parser: argparse.ArgumentParser) -> None:
    """``--near-misses``: a word that came close to its threshold and fell back is reported."""
    parser.add_argument("--near-misses", action="store_true",
                        help="also report near misses: a word whose score rose to half its "
                             "threshold or more and fell back (how close a missed word came)")


def detector_setup(args: argparse.Namespace, config: Config) -> tuple[Config, Bundle]:
    """Apply the shared flags; return ``(config, bundle)`` ready for ``Detector`` (``--threshold``
    checked against the model's words and laid over ``posterior.thresholds``)."""
    config = with_overrides(config, {**model_overrides(args), "detector.hop_ms": args.hop_ms,
                                     "audio.block_ms": args.block_ms})
    if config.audio.block_ms >= 1000 * config.audio.ring_seconds:
        raise KwsError(f"blocks of {config.audio.block_ms:g} ms do not fit the ring buffer "
                       f"(audio.ring_seconds: {config.audio.ring_seconds:g})")
    bundle = load_bundle(find_model(config.model_path), config)
    return with_thresholds(config, bundle.words, args.threshold), bundle


def require_extras(*names: str) -> None:
    """``ModuleNotFoundError`` (one line from ``main``) when one of ``names`` is not installed,
    found without importing it (TensorFlow takes seconds): checked before long work."""
    import importlib.util

    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: sys.modules[name] is None
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def json_line(value) -> str:
    """``value`` as one line of strict JSON (``kws.writes.to_json``: NaN becomes null)."""
    from kws.writes import to_json

    return to_json(value)


def debugging(args: argparse.Namespace | None = None) -> bool:
    """A real traceback instead of one line: ``--debug`` or ``KWS_DEBUG`` set to a non-empty,
    non-zero value."""
    return bool(getattr(args, "debug", False)) or os.environ.get("KWS_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    return str(text).strip().split("\n")[0] or "unknown error"


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush at exit cannot fail again (and
    print "Exception ignored ...") after the error has been reported."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _error(message: str) -> int:
    try:
        print(f"kws: error: {_one_line(message)}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass  # stderr itself is gone: the exit code is all that is left
    return 2


def _stdout_usable() -> bool:
    """False when stdout was closed (``kws ... >&-``): prints would vanish without a word."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except Exception:  # noqa: BLE001 - a replaced sys.stdout without a descriptor (a test's)
        return not getattr(sys.stdout, "closed", False)
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _output_error(err: OSError) -> str | None:
    """The message for a failed write to stdout (full disk, I/O error), else None."""
    if err.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF):
        return f"cannot write output: {err.strerror or err}"
    return None


def main(argv: list[str] | None = None) -> int:
    """The ``kws`` command; returns the exit status (0, or 2 for any error, 130 on Ctrl-C).

    If a call into PortAudio had to be abandoned (a stalled audio server: it may never return),
    the process ends here with ``os._exit``: PortAudio's own exit handler would block too.
    """
    code = _main(argv)
    microphone = sys.modules.get("kws.audio.microphone")
    if microphone is not None and microphone.abandoned.is_set():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    args = build_parser(argv).parse_args(argv)
    if debugging(args):
        config: Config = load_config(args.config)
        code = int(args.run(args, config) or 0)
        sys.stdout.flush()
        return code
    if not _stdout_usable():
        return _error("standard output is closed; detections and results would be lost "
                      "(redirect it, e.g. > out.txt)")
    try:
        config = load_config(args.config)
        code = int(args.run(args, config) or 0)
        sys.stdout.flush()  # a full disk surfaces here, not in the interpreter's exit
        return code
    except KwsError as err:
        return _error(str(err)) if err.exit_code == 2 else _report(err)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in TRAINING_ONLY:
            return _error(f"`kws {args.command}` needs the training extras ({err.name} is not "
                          f"installed): {install_hint('train')}")
        return _error(f"{_one_line(err)} (a broken install? reinstall with {install_hint()})")
    except KeyboardInterrupt:
        print("kws: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: the reader left, which is how such a pipe ends, not an
        # error worth a message (as `yes | head`).
        _silence_stdout()
        return 0
    except MemoryError:
        return _error("out of memory (a configuration value too large? see config.yaml)")
    except OSError as err:
        message = _output_error(err)
        if message is not None:
            _silence_stdout()
            return _error(message)
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return _error(f"{where}{err.strerror or _one_line(err)}")
    except Exception as err:  # noqa: BLE001 - the one place every failure becomes one line
        return _error(f"{type(err).__name__}: {_one_line(err)} (a bug: rerun with --debug or KWS_DEBUG=1 "
                      "for the traceback, and report it)")


def _report(err: KwsError) -> int:
    try:
        print(f"kws: error: {err}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass
    return err.exit_code
