"""The progress feedback of long work: a tqdm bar on a terminal, plain lines otherwise, and start-up notes.

Shared by the run, the evaluation and the report (a library-level module, so the report
needs nothing from :mod:`medxai.pipeline`).

On a terminal with a width the bar is tqdm's, animated. Where there is no width to draw
a bar in (stderr is not a terminal: a log file, a pipe, a batch job; or the terminal
reports 0 columns, or ``COLUMNS=0``) the progress is a plain line now and then instead,
one per tenth of the work::

    medxai: 120/300 images (40 %), 2.1 maps/s, ETA 1m30s

:func:`note` prints a line before a long silent step (``medxai: loading the model m.keras``),
under the same rule as the bar: only when progress is shown.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from tqdm import tqdm

__all__ = ["PlainProgress", "note", "progress_bar", "terminal_width"]

#: How the plain lines name a tqdm unit.
_NOUNS = {"img": "images", "map": "maps", "explanation": "explanations"}


def terminal_width() -> int:
    """The columns of stderr's terminal: 0 when stderr is no terminal, or reports (or ``COLUMNS`` says) 0 columns."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) == 0:
        return 0
    try:
        if not sys.stderr.isatty():
            return 0
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):  # a replaced stderr without a file descriptor
        return 0


def note(text: str, enabled: bool = True) -> None:
    """``medxai: <text>`` on stderr, before a long silent step, when progress is shown (``enabled``)."""
    if enabled:
        print(f"medxai: {text}", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``1m30s``, ``2h05m``, ``12s``: a short remaining time.

    Example:
        >>> duration(90), duration(7500), duration(4.2)
        ('1m30s', '2h05m', '4s')
    """
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PlainProgress:
    """tqdm's interface as plain lines on stderr: one per tenth of ``total`` (and one at the end).

    ``medxai: 120/300 images (40 %), 2.1 maps/s, ETA 1m30s``: the rate is the postfix when one
    is set (:meth:`set_postfix_str`), else the units per second since the start; the ETA
    counts only the work done in this process (a resumed run's first images are not
    mistaken for speed).
    """

    def __init__(self, total: int, *, desc: str, unit: str, initial: float = 0, disable: bool = False):
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.n = self.initial = initial
        self.postfix = ""
        self._started = time.perf_counter()
        self._shown = self._tenth(initial)  # the tenths already said
        self._last: float | None = None

    def _tenth(self, n: float) -> int:
        return 10 if self.total <= 0 else min(10, math.floor(10 * n / self.total + 1e-9))

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: float = 1) -> None:
        self.n += n
        tenth = self._tenth(self.n)
        if tenth > self._shown:
            self._shown = tenth
            self._line()

    def line(self) -> str:
        """The line that says where the work stands now."""
        noun = _NOUNS.get(self.unit, self.unit + "s")
        total = max(self.total, 0)
        percent = 100 * self.n / total if total else 100.0
        done_now = math.floor(self.n + 1e-9)  # whole units: a part-done image is not counted yet
        text = f"{self.desc}: {done_now}/{total} {noun} ({math.floor(percent + 1e-9)} %)"
        elapsed = time.perf_counter() - self._started
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        text += f", {self.postfix}" if self.postfix else f", {rate:.1f} {noun}/s"
        if self.n < total and rate > 0:
            text += f", ETA {duration((total - self.n) / rate)}"
        return text

    def _line(self) -> None:
        if not self.disable:
            self._last = self.n
            print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._last != self.n and self.n > self.initial:
            self._line()
        self.disable = True  # closed: says nothing more


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str,
    enabled: bool = True,
    bar_format: str | None = None,
    log_interval: float = 10.0,
    initial: float = 0,
) -> Any:
    """A tqdm bar on stderr's terminal; :class:`PlainProgress` lines where there is no width to draw it.

    ``initial`` is the work done before (a resumed run's images): the bar starts there, so
    its first rate and ETA count only what this process does. ``log_interval`` is kept for
    callers of the former ASCII bar and no longer used.
    """
    del log_interval
    width = terminal_width() if enabled else 80
    if width <= 0:
        return PlainProgress(total, desc=desc, unit=unit, initial=initial)
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
        bar_format=bar_format,
    )
