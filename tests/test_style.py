"""House style, checked by the suite itself: ruff (lint and format) over the tree, mypy over the package.

The README's one test command therefore checks them too. Skipped where a tool is not installed
(both are in the ``test`` extras).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(module: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing():
    result = _tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted():
    result = _tool("ruff", "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_type_checks():
    cache = Path(tempfile.gettempdir()) / "medxai-mypy-cache"  # never inside the checkout
    result = _tool("mypy", "--cache-dir", str(cache), "medxai")
    assert result.returncode == 0, result.stdout + result.stderr
