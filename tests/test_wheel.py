"""The wheel works outside a clone: built, installed into a fresh virtual environment with
its dependencies resolved by pip, run from a directory that is not the repository, it finds
the shipped default model and hears what it hears in a clone.

The dependencies come from a local wheelhouse (``.make/wheelhouse``, filled by ``pip download``
the first time, or when the requirements change), so the install is a real resolution of
``pyproject.toml``'s requirements that does not wait on the registry each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reference

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".make" / "wheelhouse"
pytestmark = pytest.mark.slow


def run(*cmd, cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def copy_tracked(dest: Path) -> None:
    """The repository's tracked files (links stay links), as a fresh clone would have them."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split("\0")):
        src, dst = ROOT / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """``(venv bin folder, working directory outside any clone)``."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, wheels, venv, work = tmp / "src", tmp / "wheels", tmp / "venv", tmp / "work"
    copy_tracked(src)
    work.mkdir()
    run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w", wheels, cwd=tmp)
    (wheel,) = wheels.glob("kws-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    # pip resolves the wheel's requirements from the wheelhouse alone; what it lacks is
    # downloaded once (from the configured index), then the same resolution runs again.
    install = (*pip, "install", "-q", "--no-index", "--find-links", WHEELHOUSE, wheel)
    if run(*install, cwd=tmp, check=False).returncode != 0:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "-q", "-d", WHEELHOUSE, wheel, cwd=tmp)
        run(*install, cwd=tmp)
    run(*pip, "check", cwd=tmp)  # every requirement of every installed package is met
    shutil.rmtree(src)  # nothing of the source tree is left to find
    return venv / "bin", work


def test_the_wheel_brings_its_dependencies_and_nothing_of_the_clone(installed):
    bin_dir, work = installed
    code = ("import importlib.metadata as m, numpy, kws; print(numpy.__file__); print(kws.__file__); "
            "print(sorted(r.split(';')[0].split('>')[0].split('=')[0].strip() for r in m.requires('kws') "
            "if 'extra ==' not in r))")
    numpy_at, kws_at, requires = run(bin_dir / "python", "-c", code, cwd=work).stdout.splitlines()
    venv = str(work.parent / "venv")
    assert numpy_at.startswith(venv) and kws_at.startswith(venv)  # installed there, not borrowed
    assert "numpy" in requires and "ai-edge-litert" in requires and "tensorflow" not in requires


def test_the_wheel_carries_the_repositorys_config_yaml(installed):
    bin_dir, work = installed
    path = run(bin_dir / "python", "-c", "import kws.config; print(kws.config.DEFAULT_CONFIG)", cwd=work).stdout
    assert Path(path.strip()).is_relative_to(work.parent / "venv")
    assert Path(path.strip()).read_text() == (ROOT / "config.yaml").read_text()


def test_the_wheel_carries_the_page(installed):
    # kws serve --http serves kws/web/static from the installed package: every tracked file of it.
    bin_dir, work = installed
    code = "import kws.web, pathlib; print(pathlib.Path(kws.web.__file__).parent / 'static')"
    static = Path(run(bin_dir / "python", "-c", code, cwd=work).stdout.strip())
    assert static.is_relative_to(work.parent / "venv")
    names = subprocess.run(["git", "ls-files", "-z", "kws/web/static"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    committed = {Path(name).name: (ROOT / name).read_bytes() for name in filter(None, names)}
    assert "index.html" in committed and "app.js" in committed
    assert {f.name: f.read_bytes() for f in static.iterdir()} == committed


def test_wheel_replays_with_the_shipped_model(installed):
    bin_dir, work = installed
    # The API's model, and the config's detector.model (what `kws listen` and `replay` load).
    where = run(bin_dir / "python", "-c", "import kws, kws.config; print(kws.__file__); "
                "print(kws.Spotter().bundle.path); print(kws.config.load_config().model_path)",
                cwd=work).stdout.split()
    assert str(work.parent / "venv") in where[0], where
    assert Path(where[1]) == Path(where[2]) == Path(where[0]).parent / "models" / "default"
    # kws enroll starts from the Keras model and the enrolment bank: both travel too
    assert (Path(where[1]) / "model.keras").is_file()
    assert (Path(where[0]).parent.parent / "kws_train" / "enroll" / "bank.npz").is_file()
    # What the shipped model hears on the reference audio, as in a clone.
    out = run(bin_dir / "kws", "replay", reference.AUDIO, "--json", cwd=work).stdout
    found = [json.loads(line) for line in out.splitlines()]
    assert reference.changes(found, reference.expected("default").detections, reference.labels()) == []
    assert all(set(d) == {"file", "time", "word", "score"} for d in found)


def test_wheel_names_the_fix_for_a_missing_model(installed):
    bin_dir, work = installed
    result = run(bin_dir / "python", "-c", "import kws; kws.Spotter(model='nowhere')", cwd=work, check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "no model bundle at" in last and "--model DIR" in last
