"""The wheel works outside a clone: built, installed into a fresh virtual environment, run
from a directory that is not the repository, it finds the shipped default model.

The fresh environment borrows this one's dependencies (a ``.pth`` naming their folder) so the
test downloads nothing; the wheel itself is installed with ``--no-deps --no-index``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(*cmd, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=300)
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
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "borrowed-deps.pth").write_text(str(Path(numpy.__file__).parent.parent) + "\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index",
        "-q", wheel, cwd=tmp)
    shutil.rmtree(src)  # nothing of the source tree is left to find
    return venv / "bin", work


def test_wheel_replays_with_the_shipped_model(installed, spoken):
    bin_dir, work = installed
    # The API's model, and the config's detector.model (what `kws listen` and `replay` load).
    where = run(bin_dir / "python", "-c", "import kws, kws.config; print(kws.__file__); "
                "print(kws.Spotter().bundle.path); print(kws.config.load_config().model_path)",
                cwd=work).stdout.split()
    assert str(work.parent / "venv") in where[0], where
    assert Path(where[1]) == Path(where[2]) == Path(where[0]).parent / "models" / "default"
    assert not (Path(where[1]) / "model.keras").exists()
    out = run(bin_dir / "kws", "replay", spoken[2], "--json", cwd=work).stdout
    found = [json.loads(line) for line in out.splitlines()]
    assert all(set(d) == {"time", "word", "score"} for d in found)


def test_wheel_names_the_fix_for_a_missing_model(installed):
    bin_dir, work = installed
    result = run(bin_dir / "python", "-c", "import kws; kws.Spotter(model='nowhere')", cwd=work, check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "no model bundle at" in last and "--model DIR" in last
