"""The README's Python examples run, and print what the README shows.

Every ```python block of README.md that prints and is followed by an indented block (its
output, possibly after a line of text) is run from the repository root in a fresh Python; its
output is compared with the README's token by token: words exactly, numbers to 1e-3 relative
(a float printed on another CPU may differ in its last digits), so the README cannot drift from
what the program does.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n(?P<after>.*?)(?=```|\n#)", re.S)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def examples() -> list[tuple[int, str, str]]:
    """``(line, code, expected output)`` of every README example that shows its output."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        code, after = match["code"], match["after"]
        if "print(" not in code:
            continue
        shown = re.search(r"(?:^|\n)((?:    .*\n?)+)", after)
        if shown is None:
            continue
        expected = "\n".join(line[4:] for line in shown.group(1).splitlines())
        found.append((text[: match.start()].count("\n") + 1, code, expected))
    return found


def same_tokens(got: str, want: str) -> bool:
    got_tokens, want_tokens = got.split(), want.split()
    if len(got_tokens) != len(want_tokens):
        return False
    for g, w in zip(got_tokens, want_tokens):
        g_numbers, w_numbers = _NUMBER.findall(g), _NUMBER.findall(w)
        if _NUMBER.sub("#", g) != _NUMBER.sub("#", w) or len(g_numbers) != len(w_numbers):
            return False
        for a, b in zip(g_numbers, w_numbers):
            if not math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-6):
                return False
    return True


EXAMPLES = examples()


def test_the_readme_shows_its_python_examples_with_their_output():
    assert len(EXAMPLES) >= 3  # the Python API, the notebook API, segmentation models


@pytest.mark.parametrize("line, code, expected", EXAMPLES, ids=[f"README line {e[0]}" for e in EXAMPLES])
def test_a_readme_example_prints_what_the_readme_shows(line, code, expected, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_tokens(done.stdout, expected), f"README line {line} shows:\n{expected}\nthe code prints:\n{done.stdout}"


def test_the_comparison_accepts_last_digits_and_refuses_real_drift():
    assert same_tokens("(64, 64) float32 1.0 [0.06469351]", "(64, 64) float32 1.0 [0.0646936]")
    assert not same_tokens("gap 289.951", "gap 290.951")
    assert not same_tokens("up1_conv2 (64, 64)", "up2_conv2 (64, 64)")
    assert not same_tokens("8 results", "8 results more")
