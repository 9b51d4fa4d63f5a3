"""Keep what C libraries print on file descriptor 2 off the terminal.

LiteRT announces its XNNPACK delegate on every interpreter it creates and mpg123 warns about
every odd frame; neither is an error of ours, and errors still arrive as exceptions, so kws
sends that chatter to /dev/null while it creates interpreters or decodes such files.
TensorFlow (``kws train``, ``kws enroll``) is told before it loads (``quiet_tensorflow``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def quiet_c_stderr() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to /dev/null meanwhile (Python's own
    ``sys.stderr`` is untouched when it is not fd 2; errors still arrive as exceptions)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Keep TensorFlow's chatter off the terminal while its import runs in this block, and
    after it: its C++ log (oneDNN and CPU-feature notes, a ``cuInit`` error on machines
    without a GPU, the converter's progress) and its Python warnings (retracing) were half of
    what ``kws enroll`` printed. Its errors still arrive as exceptions. ``kws train`` and
    ``kws enroll`` import TensorFlow in it unless ``--debug``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow loads
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with quiet_c_stderr():  # what TensorFlow logs while loading, before that setting applies
        yield
