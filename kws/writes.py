"""How every kws command writes: only its own files, each replaced in one step, durably.

The rule (``train``, ``enroll``, ``record``, ``make-stream``, ``eval``, ``eval-stream``,
``bench --plot``):

* **Refuse first.** ``check_target`` runs before any long work and creates nothing: an output
  that cannot be written is one line (``KwsError``), and a refused or failed run leaves no
  empty folder behind.
* **Replace in one step.** ``staged`` yields a staging path beside the target (same folder,
  so a rename is atomic) and renames it over the target only once the body has finished; a
  directory is swapped with the old one in one step (``renameat2(RENAME_EXCHANGE)`` on Linux).
  Until then the previous file or bundle is untouched and usable, also when the command is
  interrupted (the staging is removed) or killed (the next write removes what the dead
  process left: the staging name carries its pid). ``staged_together`` does it for outputs
  that belong together (a stream and its labels): every one is replaced, or, when a replace
  fails or is interrupted, none (the ones already replaced are put back).
* **Durably.** What was staged is on the disk (``fsync`` of every file and folder) before the
  rename, and the rename is (``fsync`` of the folder) before the command says it is done: a
  power cut leaves the old model or take, or the new one, never an empty file.
* **Only what was named.** A file the user did not name (a stream's labels beside it, a
  report's files in its folder) replaces only kws's own earlier one: ``check_unnamed``.
* **Nothing else.** Only the target itself is replaced; missing parent folders are created
  when the output is written, not before. What a folder output (a bundle) may already hold is
  the caller's decision (``kws.bundle.check_bundle_target`` refuses folders holding anything
  but a bundle). Staging is created with the user's umask applied by the system, as any file
  the user makes; the process umask is never changed (another thread may be creating files).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from kws.errors import KwsError

STAGING = ".kws-staging"  # name part of an output being written: .<name>.kws-staging-<pid>-<random>


def check_target(path: str | Path, what: str, directory: bool = False) -> Path:
    """``path`` if a file (or with ``directory`` a folder) can be written there, else a
    one-line ``KwsError`` naming ``what`` (``--out``...). Creates nothing."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise KwsError(f"{what} {path}: a broken symbolic link; refusing to write through it")
    if directory and path.exists() and not path.is_dir():
        raise KwsError(f"{what} {path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise KwsError(f"{what} {path}: is a directory, not a file")
    if not directory and path.exists() and not path.is_file():
        raise KwsError(f"{what} {path}: exists and is not a regular file")
    folder = path if directory and path.is_dir() else path.parent
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise KwsError(f"{what} {path}: cannot create it ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise KwsError(f"{what} {path}: cannot write there ({existing} is not writable)")
    return path


def check_unnamed(path: str | Path, what: str, is_own: Callable[[Path], bool], instead: str) -> Path:
    """``check_target`` for a file a command writes that the user did not name (a stream's
    labels beside it, a report's files in the folder named): where something is that
    ``is_own`` does not know as kws's own earlier output, a one-line ``KwsError`` (``instead``
    says what to do), as a bundle folder holding the user's files is refused. Creates nothing."""
    path = check_target(path, what)
    if path.exists() and not is_own(path):
        raise KwsError(f"{what} {path}: exists and kws did not write it; refusing to replace it ({instead})")
    return path


@contextlib.contextmanager
def staged(path: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield where to write ``path`` (a file, or with ``directory`` an empty folder); on success
    it replaces ``path`` in one step. If the body raises, ``path`` is untouched and the staging
    removed. The staging keeps ``path``'s suffix (``.png``, ``.wav``: writers that go by it)."""
    with _staged([Path(path)], directory) as (staging,):
        yield staging


@contextlib.contextmanager
def staged_together(paths: list[str | Path]) -> Iterator[list[Path]]:
    """``staged`` for files that belong together (a stream and its labels): a staging for each;
    on success every one of ``paths`` is replaced, one after the other. If a replace fails, or
    an interrupt comes between two, those already replaced get their old content back (or are
    removed, if they are new), so the files stay a matching pair. Only a kill in the
    microseconds between two renames could part them."""
    with _staged([Path(p) for p in paths], directory=False) as stagings:
        yield stagings


@contextlib.contextmanager
def _staged(paths: list[Path], directory: bool) -> Iterator[list[Path]]:
    stagings: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale(path)
            stagings.append(_create_staging(path, directory))
        yield stagings
        for staging in stagings:
            _sync_tree(staging)  # on the disk before its name is
        if len(paths) == 1:
            _replace(stagings[0], paths[0])
            _sync(paths[0].parent)
        else:
            _replace_together(stagings, paths)
    except OSError as err:  # said of the output the user named, not of its staging
        target = _output_of(err.filename, stagings, paths)
        if target is None:
            raise
        raise KwsError(f"{target}: cannot write it ({err.strerror or err})") from None
    finally:
        for staging in stagings:
            _remove(staging)


def _create_staging(path: Path, directory: bool) -> Path:
    """A new, empty file or folder beside ``path``, named for this process; created with the
    mode any new file gets (the system applies the user's umask), not ``mkstemp``'s 0600."""
    while True:
        staging = path.parent / f".{path.name}{STAGING}-{os.getpid()}-{secrets.token_hex(4)}" \
                                f"{'' if directory else path.suffix}"
        try:
            if directory:
                os.mkdir(staging, 0o777)
            else:
                os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return staging
        except FileExistsError:
            continue
        except OSError as err:
            raise KwsError(f"{path}: cannot write it ({err.strerror or err})") from None


def _output_of(filename, stagings: list[Path], paths: list[Path]) -> Path | None:
    """The output whose staging ``filename`` is, or is in (with its own part of the path)."""
    if filename is None or isinstance(filename, int):
        return None
    name = Path(os.fsdecode(filename))
    for staging, path in zip(stagings, paths):
        if name == staging or staging in name.parents:
            return path / name.relative_to(staging) if name != staging else path
    return None


def _replace_together(stagings: list[Path], paths: list[Path]) -> None:
    """Replace each file of ``paths`` by its staging: all, or (on any error) none."""
    tried: list[tuple[Path, Path | None]] = []  # (path, a link to its old content; None: it had none)
    try:
        for staging, path in zip(stagings, paths):
            tried.append((path, _keep_old(path)))  # before the rename: an interrupt can come after it
            os.replace(staging, path)
        for folder in {path.parent for path in paths}:
            _sync(folder)
    except BaseException:
        for path, old in reversed(tried):
            if old is not None:
                os.replace(old, path)
            else:
                _remove(path)
        raise
    finally:
        for _, old in tried:
            if old is not None:
                _remove(old)


def _keep_old(path: Path) -> Path | None:
    """A second name for ``path``'s current content, to put it back (a hard link, no copy, where
    the file system has them); None when there is none."""
    if not path.exists():
        return None
    old = path.parent / f".{path.name}{STAGING}-{os.getpid()}-old-{secrets.token_hex(4)}"
    try:
        os.link(path, old)
    except OSError:
        shutil.copy2(path, old)
    return old


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through ``staged``."""
    with staged(path) as staging:
        staging.write_text(text)


def to_json(value, indent: int | None = None) -> str:
    """``value`` as strict JSON, what any parser reads: NaN and infinities (an undefined figure)
    become null, numpy scalars and arrays plain numbers and lists, other objects their text."""
    return json.dumps(_json_safe(value), indent=indent, allow_nan=False)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def clean_stale(path: Path) -> None:
    """Remove what a killed writer of ``path`` left beside it (its process is gone)."""
    start = f".{path.name}{STAGING}-"
    for item in path.parent.glob(f"{glob.escape(start)}*"):
        pid = item.name[len(start):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and not item.is_symlink():
            _remove(item)


def _replace(staging: Path, path: Path) -> None:
    """Put ``staging`` at ``path`` in one step; a folder's previous content ends in ``staging``."""
    if not staging.is_dir() or not path.is_dir():
        os.replace(staging, path)
    elif not _exchange(staging, path):  # not Linux: two renames, the old one kept until the second
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}{STAGING}-{os.getpid()}-old-", dir=path.parent))
        path.rename(old / path.name)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)


def _sync(path: Path) -> None:
    """``fsync`` a file's data or a folder's entries."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(path: Path) -> None:
    """``fsync`` ``path`` and, for a folder, everything in it (deepest first)."""
    if path.is_dir():
        for folder, dirs, files in os.walk(path, topdown=False):
            for name in files:
                _sync(Path(folder) / name)
    _sync(path)


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            item.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0
