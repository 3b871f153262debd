"""The contact sheets of a report: every image, in pages of :data:`~.figures.CONTACT_SHEET_LIMIT` rows.

Sheets are drawn and written as soon as they fill, so only one page of cells is
held in memory. The first is ``contact_sheet.png`` (the name of the single sheet
of earlier versions), the next ``contact_sheet_2.png``, ``contact_sheet_3.png``, ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medxai.io.writers import write_png
from medxai.viz.report.figures import CONTACT_SHEET_LIMIT, SheetRow, contact_sheet

SHEET_NAME = "contact_sheet.png"
_LATER_SHEET = re.compile(r"contact_sheet_(\d+)\.png")


def sheet_name(page: int) -> str:
    """The file name of contact sheet ``page`` (1-based)."""
    return SHEET_NAME if page == 1 else f"contact_sheet_{page}.png"


@dataclass
class Sheet:
    """One written contact sheet: its file name and the numbers of its first and last images."""

    name: str
    first: int
    last: int


class ContactSheets:
    """Collects contact sheet rows image by image and writes a sheet whenever one is full.

    Args:
        root: The run folder (the sheets are written there).
        title: The run's name, shown at the top of each sheet.
        methods: The columns.
        rows_per_sheet: Image/class rows per sheet. An image's rows stay on one
            sheet unless it has more rows than a sheet holds.
    """

    def __init__(self, root: Path, title: str, methods: Sequence[str], rows_per_sheet: int = CONTACT_SHEET_LIMIT):
        self.root, self.title, self.methods, self.limit = root, title, list(methods), rows_per_sheet
        self.sheets: list[Sheet] = []
        self._rows: list[SheetRow] = []
        self._numbers: list[int] = []  # the image number of each pending row

    def add(self, number: int, rows: Sequence[SheetRow]) -> None:
        """Add image ``number``'s rows, writing the pending sheet first when they would not fit on it."""
        if self._rows and len(self._rows) + len(rows) > self.limit:
            self._write()
        for row in rows:
            if len(self._rows) >= self.limit:
                self._write()
            self._rows.append(row)
            self._numbers.append(number)

    def close(self) -> list[Sheet]:
        """Write the last sheet (an empty one when there were no rows at all), remove stale later sheets."""
        if self._rows or not self.sheets:
            self._write()
        for path in self.root.glob("contact_sheet_*.png"):
            match = _LATER_SHEET.fullmatch(path.name)
            if match and int(match.group(1)) > len(self.sheets):
                path.unlink(missing_ok=True)  # left by an earlier report of more images
        return self.sheets

    def _write(self) -> None:
        page = len(self.sheets) + 1
        first, last = (self._numbers[0], self._numbers[-1]) if self._numbers else (0, 0)
        span = f"images {first}–{last}" if first != last else f"image {first}" if first else "no images"
        title = f"medxai · {self.title}\n{span} (sheet {page})"
        name = sheet_name(page)
        write_png(self.root / name, contact_sheet(title, self.methods, self._rows))
        self.sheets.append(Sheet(name, first, last))
        self._rows, self._numbers = [], []
