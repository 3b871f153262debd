"""The progress bar of long work (tqdm): animated on a terminal, a line now and then otherwise.

Shared by the run, the evaluation and the report (a library-level module, so the report
needs nothing from :mod:`medxai.pipeline`).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str,
    enabled: bool = True,
    bar_format: str | None = None,
    log_interval: float = 10.0,
) -> tqdm:
    """A tqdm bar on stderr; when stderr is not a terminal it is ASCII and updates every ``log_interval`` seconds."""
    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=tty,
        ascii=not tty,
        mininterval=0.2 if tty else log_interval,
        bar_format=bar_format,
    )
