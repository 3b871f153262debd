"""The progress bar of long commands (tqdm): animated on a terminal, one line otherwise."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr; when stderr is not a terminal it updates rarely and in ASCII."""
    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=tty,
        ascii=not tty,
        mininterval=0.2 if tty else 10.0,
    )
