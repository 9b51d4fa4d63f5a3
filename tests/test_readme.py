"""The README says only what is true (issue #20): its example output is generated from the code
and the shipped model by ``scripts/readme.py`` (checked current here), the figures of its one
table of what kws measures are those of ``docs/results.md``, each made by a command that
``scripts/figures.sh`` runs, every page it links is there, and the licence it names is in the
repository and the wheel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def measures() -> list[list[str]]:
    """The rows of the README's table of what kws measures: ``[what, figure, command]``."""
    section = README.read_text().split("## What it measures", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in section.splitlines() if line.startswith("| ")]
    return rows[1:]  # below the header


def figures_commands() -> list[list[str]]:
    """Each ``kws`` command of ``scripts/figures.sh``, as its words (quotes and continuations gone)."""
    text = (ROOT / "scripts" / "figures.sh").read_text().replace("\\\n", " ").replace('"', "")
    return [line.split() for line in text.splitlines() if line.startswith("kws ")]


def made_by(command: list[str], script: list[str]) -> bool:
    """Whether the README's ``command`` is ``script``'s, each of its words there (``DATA`` as
    ``$DATA``, a file name as the last part of a path)."""
    return command[:2] == script[:2] and all(
        any(s == word or s == f"${word}" or s.endswith(f"/{word}") for s in script) for word in command)


def test_the_measures_table_quotes_the_results_and_the_commands_that_make_them():
    rows = measures()
    assert len(rows) >= 3 and all(len(row) == 3 for row in rows), rows
    results = (ROOT / "docs" / "results.md").read_text()
    scripts = figures_commands()
    for what, figure, command in rows:
        for number in re.findall(r"\d+(?:\.\d+)?", figure):
            assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", results), \
                f"{what}: {number} is not in docs/results.md"
        words = command.strip("`").split()
        assert any(made_by(words, script) for script in scripts), f"{what}: scripts/figures.sh does not run {command}"


def test_every_page_the_readme_links_is_there():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text()):
        assert (ROOT / target).exists(), target


def test_the_readme_examples_are_current():
    result = subprocess.run([sys.executable, "scripts/readme.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_licence_the_readme_names_is_there_and_travels_in_the_wheel():
    assert "Apache-2.0" in README.read_text()
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    # dist-info/licenses/: the licence, and the NOTICE naming the data and the teacher the model learnt from
    assert re.search(r'^license-files = \["LICENSE", "NOTICE"\]', pyproject, re.M)
    notice = (ROOT / "NOTICE").read_text()
    assert all(name in notice for name in ("Speech Commands", "LibriSpeech", "speechocean762", "KWT-1"))
