"""Keep what C libraries print on file descriptor 2 off the terminal.

LiteRT announces its XNNPACK delegate on every interpreter it creates and mpg123 warns about
every odd frame; neither is an error of ours, and errors still arrive as exceptions, so kws
sends that chatter to /dev/null while it creates interpreters or decodes such files.
"""

from __future__ import annotations

import contextlib
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
