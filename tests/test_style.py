"""House style, checked by the suite itself: ruff (lint and format) over the tree, mypy over the library.

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
#: The library: everything but the pipeline and the command line (their settings are in pyproject.toml).
LIBRARY = [
    "medxai/methods", "medxai/metrics", "medxai/io", "medxai/viz", "medxai/data", "medxai/heatmap.py",
    "medxai/filters.py", "medxai/errors.py", "medxai/_validation.py", "medxai/preprocess",
]  # fmt: skip


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


def test_the_library_type_checks():
    paths = [p for p in LIBRARY if (REPO / p).exists() or (REPO / f"{p}.py").exists()]
    paths = [p if (REPO / p).exists() else f"{p}.py" for p in paths]
    cache = Path(tempfile.gettempdir()) / "medxai-mypy-cache"  # never inside the checkout
    result = _tool("mypy", "--cache-dir", str(cache), *paths)
    assert result.returncode == 0, result.stdout + result.stderr
