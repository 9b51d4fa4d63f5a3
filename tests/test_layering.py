"""Dependencies point one way: ``kws`` never imports the training package or TensorFlow.

``kws_train`` (the folder ``train/``) depends on ``kws``; the reverse would tie the runtime
to TensorFlow. ``kws train`` and ``kws enroll`` reach the training package through one import
each, inside ``kws/commands/train.py`` and ``kws/commands/enroll.py``; nothing else in ``kws``
may name it.
"""

import ast
import subprocess
import sys
from pathlib import Path

KWS = Path(__file__).resolve().parent.parent / "kws"
# The commands that reach the trainer, each through one import inside its ``run``.
TRAINING_DOORS = ("commands/train.py", "commands/enroll.py")
BLOCKED = ("train", "kws_train", "tensorflow", "keras", "librosa", "tensorboard")

# Every module of the kws package, imported with the training side made unimportable.
IMPORT_ALL = f"""
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked: {{name}}")
        return None

sys.meta_path.insert(0, Block())
import kws, kws.cli
names = [m.name for m in pkgutil.walk_packages(kws.__path__, "kws.") if m.name != "kws.__main__"]
for name in names:
    importlib.import_module(name)
kws.cli.build_parser()
assert "kws.commands.train" in names and "kws.commands.listen" in names, names
print(len(names))
"""


def test_every_kws_module_imports_without_training_or_tensorflow():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20


def test_only_the_train_command_names_the_training_package():
    offenders = []
    for path in KWS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top in ("train", "kws_train") and path.relative_to(KWS).as_posix() not in TRAINING_DOORS:
                    offenders.append(f"{path.relative_to(KWS)}: {name}")
                # The training doors load TensorFlow themselves, inside run, to mute its start-up chatter.
                if top in ("tensorflow", "keras") and path.relative_to(KWS).as_posix() not in \
                        ("eval/bench.py", *TRAINING_DOORS):
                    offenders.append(f"{path.relative_to(KWS)}: {name}")
    assert not offenders, offenders


def test_kws_train_without_extras_is_one_line(tmp_path):
    """`kws train` with the training package missing says how to install it, in one line."""
    code = ("import importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('kws_train', 'tensorflow'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from kws.cli import main\n"
            f"sys.exit(main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'b')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "pip install -e '.[train]'" in result.stderr
