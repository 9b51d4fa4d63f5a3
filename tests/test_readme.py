"""The README says only what is true (issue #20): its example output is generated from the code
and the shipped model by ``scripts/readme.py`` (checked current here), and the licence it names
is in the repository and the wheel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_examples_are_current():
    result = subprocess.run([sys.executable, "scripts/readme.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_licence_the_readme_names_is_there_and_travels_in_the_wheel():
    assert "Apache-2.0" in (ROOT / "README.md").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license-files = \["LICENSE"\]', pyproject, re.M)  # dist-info/licenses/LICENSE
