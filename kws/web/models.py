"""The models the page offers, and the one folder it writes in.

Two kinds of model, each a ``kws.serve.Model`` (the bundle loaded once, the config its
detectors are built with, thresholds laid over as for ``kws replay``):

- the models ``kws serve`` was started with (``--model``, else the config's), loaded by
  ``kws.serve.load_models`` exactly as the Wyoming service loads them;
- the bundles in the page's models folder (``--models``): the ones it enrolled, found again
  on every look, reloaded when their metadata changes (a new enrolment of the same word).

The folder is the only place the page writes (``Folder``): enrolled bundles, recorded takes
and saved thresholds. "Save" writes the thresholds where ``kws listen``, ``replay`` and
``serve`` will use them, never over a model it did not make:

- a bundle in the folder: its own thresholds (``metadata.json``, rewritten in one step by
  ``kws.bundle.rewrite_metadata``): ``kws listen --model DIR`` uses them;
- any other model (the shipped one): a config file ``<folder>/<model>.yaml`` naming the model
  and its thresholds (``kws.writes.write_text``): ``kws listen --config FILE`` uses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from kws.bundle import is_bundle, load_bundle, rewrite_metadata
from kws.config import Config, with_overrides
from kws.errors import KwsError
from kws.posterior import with_thresholds
from kws.resources import find_model
from kws.serve import Model, load_models
from kws.writes import check_target, write_text

WORD = re.compile(r"[a-z]+(?: [a-z]+){0,3}")  # what the page lets one enrol: letters, up to four words
MAX_WORD = 40
TAKES = ".takes"  # <word>.takes/: the takes recorded for <word> (no word has a dot)


class PageError(KwsError):
    """A request the page cannot serve: answered with its one line, the server goes on."""


class Folder:
    """The page's models folder: ``<word>/`` enrolled bundles, ``<word>.takes/`` recorded takes,
    ``<model>.yaml`` thresholds saved for a model outside it. Refused at start when it would
    hold or lie inside the shipped model's folder."""

    def __init__(self, path: str | Path, shipped: Path):
        self.path = Path(path).expanduser().resolve()
        shipped = shipped.resolve()
        if self.path == shipped or shipped.is_relative_to(self.path) or self.path.is_relative_to(shipped.parent):
            raise KwsError(f"--models {path}: the shipped model lives there ({shipped}); choose a folder "
                           "of your own (default: ~/.local/share/kws/models)")
        check_target(self.path, "--models", directory=True)

    def word(self, text) -> str:
        """``text`` as a word the page may enrol (lower case, single spaces), else ``PageError``."""
        word = " ".join(str(text).lower().split()) if isinstance(text, str) else ""
        if not word or len(word) > MAX_WORD or not WORD.fullmatch(word):
            raise PageError(f"word {str(text)[:MAX_WORD]!r}: letters only, up to four words of "
                            f"{MAX_WORD} characters in all")
        return word

    def bundle(self, word: str) -> Path:
        return self.path / word.replace(" ", "_")

    def takes(self, word: str) -> Path:
        return self.path / (word.replace(" ", "_") + TAKES)

    def contains(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.path)

    def bundles(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and is_bundle(p))


@dataclass(frozen=True)
class Offered:
    name: str
    model: Model
    own: bool  # in the page's folder: save writes its own thresholds


class Models:
    """Served models and the folder's bundles, by name (a folder's name; a second one of the
    same name gets a suffix)."""

    def __init__(self, config: Config, served: list[Model], folder: Folder):
        self.config = config
        self.folder = folder
        self._served: dict[str, Model] = {}
        for model in served:
            self._served[_free(model.bundle.path.name, self._served)] = model
        self._cache: dict[Path, tuple[int, Model]] = {}

    def offered(self) -> list[Offered]:
        out = [Offered(name, model, self.folder.contains(model.bundle.path)) for name, model in self._served.items()]
        served = {m.bundle.path.resolve() for m in self._served.values()}
        names = set(self._served)
        for path in self.folder.bundles():
            if path.resolve() in served:
                continue
            try:
                model = self._load(path)
            except KwsError:
                continue  # a broken bundle of the folder is not offered; the others are
            name = _free(path.name, names)
            names.add(name)
            out.append(Offered(name, model, True))
        return out

    def get(self, name) -> Offered:
        for offered in self.offered():
            if offered.name == name:
                return offered
        raise PageError(f"no model {str(name)[:80]!r} (models: {', '.join(o.name for o in self.offered())})")

    def first(self) -> Offered:
        return self.offered()[0]

    def _load(self, path: Path) -> Model:
        """A folder's bundle, as ``load_models`` loads a served one; the config's thresholds
        for other models' words are left out (they are not this one's)."""
        stamp = (path / "metadata.json").stat().st_mtime_ns
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        words = load_bundle(path).words
        mine = {w: t for w, t in self.config.posterior.thresholds.items() if w in words}
        model = load_models(with_overrides(self.config, {"posterior.thresholds": mine}), [str(path)])[0]
        self._cache[path] = (stamp, model)
        return model

    def save(self, name: str, thresholds) -> dict:
        """Write ``thresholds`` (word: value) where the commands will use them (module
        docstring); later connections to ``name`` start from them. Returns where, and the
        command that uses them."""
        offered = self.get(name)
        bundle = offered.model.bundle
        config = with_thresholds(offered.model.config, bundle.words, thresholds)  # checked here
        chosen = {w: round(float(t), 4) for w, t in thresholds.items()}
        if offered.own:
            rewrite_metadata(load_bundle(bundle.path), thresholds={**bundle.thresholds, **chosen})
            masked = sorted(set(chosen) & set(self.config.posterior.thresholds))
            note = f" (your config's posterior.thresholds still wins for {', '.join(masked)})" if masked else ""
            return {"saved": str(bundle.path), "use": f"kws listen --model {bundle.path}{note}"}
        target = self.folder.path / f"{name}.yaml"
        settings = {"detector": {"model": str(find_model(bundle.path).resolve())},
                    "posterior": {"thresholds": {**config.posterior.thresholds, **chosen}}}
        write_text(target, f"# Thresholds chosen on the kws page for {bundle.path}: kws listen --config {target}\n"
                           + yaml.safe_dump(settings, sort_keys=False))
        self._served[name] = Model(bundle, config, {**offered.model.thresholds, **chosen}, offered.model.version)
        return {"saved": str(target), "use": f"kws listen --config {target}"}


def _free(name: str, taken) -> str:
    """``name``, or ``name-2``, ``name-3``... when it is taken."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate
