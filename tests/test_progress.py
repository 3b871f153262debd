"""``medxai._progress``: tqdm on a terminal, plain lines without a width, notes under the bar's rule."""

from __future__ import annotations

import io
import os
import re
import sys

import pytest
from tqdm import tqdm

from medxai import _progress
from medxai._progress import PlainProgress, duration, note, progress_bar, terminal_width

LINE = re.compile(r"^medxai: (\d+)/300 images \((\d+) %\), 2\.1 maps/s(, ETA (\d+h)?(\d+m)?\d+s)?$")


class _Terminal(io.StringIO):
    def isatty(self):
        return True

    def fileno(self):
        return 2


def test_columns_zero_gives_one_plain_line_per_tenth(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "0")
    with progress_bar(300, desc="medxai", unit="img") as bar:
        assert isinstance(bar, PlainProgress)
        bar.set_postfix_str("2.1 maps/s")
        for _ in range(100):
            bar.update(3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and all(LINE.match(line) for line in lines)
    assert [int(LINE.match(line)[2]) for line in lines] == list(range(10, 101, 10))
    assert lines[3].startswith("medxai: 120/300 images (40 %), 2.1 maps/s, ETA ")


def test_a_terminal_reporting_zero_columns_is_no_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((0, 0)))
    assert terminal_width() == 0
    assert isinstance(progress_bar(10, desc="x", unit="img"), PlainProgress)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((120, 40)))
    assert terminal_width() == 120


def test_not_a_terminal_gets_plain_lines_and_a_terminal_gets_tqdm(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal_width() == 0  # pytest's captured stderr is no terminal
    monkeypatch.setattr(_progress, "terminal_width", lambda: 80)
    bar = progress_bar(300, desc="medxai", unit="img", initial=104)
    assert isinstance(bar, tqdm) and bar.n == 104


def test_the_bar_starts_at_the_resumed_count_and_its_eta_counts_only_new_work(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "0")
    bar = progress_bar(300, desc="medxai", unit="img", initial=104)
    assert bar.n == 104 and capsys.readouterr().err == ""  # no 0/300, no jump
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: bar._started + 10.0)
    bar.update(16)  # 120/300: the fourth tenth; 16 images in 10 s
    line = capsys.readouterr().err.strip()
    assert line == "medxai: 120/300 images (40 %), 1.6 images/s, ETA 1m52s"
    bar.close()
    assert capsys.readouterr().err == ""  # the last line said it already


def test_close_says_where_the_work_stopped(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "0")
    with progress_bar(100, desc="evaluate", unit="map") as bar:
        bar.update(5)
    assert capsys.readouterr().err.startswith("evaluate: 5/100 maps (5 %), ")


def test_disabled_says_nothing(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "0")
    with progress_bar(10, desc="medxai", unit="img", enabled=False) as bar:
        bar.update(10)
    note("loading the model m.keras", False)
    assert capsys.readouterr().err == ""
    note("loading the model m.keras")
    assert capsys.readouterr().err == "medxai: loading the model m.keras\n"


@pytest.mark.parametrize("seconds,text", [(0.4, "0s"), (59, "59s"), (90, "1m30s"), (3600 * 2 + 300, "2h05m")])
def test_duration(seconds, text):
    assert duration(seconds) == text
