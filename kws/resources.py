"""Where the shipped model lives, and the one-line error when a model is missing.

The default bundle's runtime files (``metadata.json``, ``frontend.npz``, ``model*.tflite``)
are package data: ``kws/models`` is a link to the repository's ``models/`` (the source of
truth), and the wheel carries ``kws/models/default`` as plain files. ``kws/config.yaml`` is
likewise a link to the repository's ``config.yaml``, and its ``detector.model: models/default``
is anchored to that file's real location: the repository's ``models/default`` in a clone or an
editable install, the packaged copy in a wheel install. ``find_model`` also falls back to the packaged
copy when a path named ``models/<name>`` is absent (a config copied out of a clone).
"""

from __future__ import annotations

from pathlib import Path

from kws.errors import KwsError

PACKAGED_MODELS = Path(__file__).resolve().parent / "models"
SOURCE_TREE = Path(__file__).resolve().parent.parent / "pyproject.toml"  # there in a clone only


def install_hint(extra: str | None = None) -> str:
    """The pip line that adds ``extra`` (or reinstalls kws) the way this kws was installed: an
    editable install from a clone, or a wheel (whose users have no ``.`` to install from)."""
    what = f"[{extra}]" if extra else ""
    return f"pip install -e '.{what}'" if SOURCE_TREE.is_file() else f"pip install 'kws{what}'"


class ModelNotFoundError(KwsError):
    """No model bundle where the config or the caller points."""


def is_bundle(path: Path) -> bool:
    return (path / "metadata.json").is_file()


def packaged_model(name: str = "default") -> Path | None:
    """The bundle shipped inside the package under ``name``, or None."""
    path = PACKAGED_MODELS / name
    return path if is_bundle(path) else None


def find_model(path: str | Path) -> Path:
    """``path`` if it holds a bundle; else the packaged bundle of the same name when ``path``
    is ``.../models/<name>``; else ``ModelNotFoundError`` naming the fix."""
    path = Path(path)
    if is_bundle(path):
        return path
    if path.parent.name == "models" and (packaged := packaged_model(path.name)) is not None:
        return packaged
    if path.exists():
        raise ModelNotFoundError(f"{path}: not a model bundle (no metadata.json); pass --model DIR "
                                 "(model=DIR in Python), a directory written by `kws train`")
    raise ModelNotFoundError(f"no model bundle at {path}: pass --model DIR (model=DIR in Python), "
                             "or reinstall kws (`pip install kws-*.whl` ships the default model)")
