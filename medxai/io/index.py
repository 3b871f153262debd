"""The run folder's index: one CSV row per (image, method, target), read and written here only.

A target is a class, or for a segmentation model a region: a channel's region
(``channel``, ``region``, ``component``, its size ``region_voxels`` and the explained
``region_score``); :func:`map_key` names one map whatever its kind. ``region_path``
names the region's mask at the source's geometry (``regions/<image id>_<target tag>.npy``,
bool, written once per region and named by every method's row; the report outlines it).

Two columns exist for resuming: ``source_key`` (a short hash of what decides the
image's maps: its id, path, label(s), mask path, series UID and the source file's
size and modification time and a SHA-256 of its bytes, see
:func:`medxai.pipeline.journal.source_key`) and
``npy_bytes`` (the size of the ``.npy`` map as written).

Per-map uncertainty (a method entry's ``uncertainty: true``): ``sd_path`` names the SD map
``<stem>.sd.npy`` beside the map (relative path; empty when not computed) and ``stability``
holds the map's max-sensitivity (Yeh et al. 2019, as Quantus's ``MaxSensitivity``; lower is
more stable, 0: identical maps; empty when not computed) and ``stability_relative`` the same
largest change over the map's own norm (free of the method's units: comparable across methods);
see :mod:`medxai.methods._engine.uncertainty`.

``label`` and ``predicted`` hold class indices (``"4;5"``: every label of the manifest
row, every class the model predicts; a segmentation model's predicted channels);
``label_name`` and ``predicted_name`` the same classes by ``model.class_names``
(``"effusion;edema"``), empty when the config names no classes.

Every reader of ``index.csv`` and of the journal ``index.partial.csv`` (resume,
``medxai evaluate``, ``medxai report``) goes through :func:`read_index`, and
every writer through :func:`index_text`, so the format has one definition. The
evaluation's CSV files (``metrics.csv``, ``summary.csv``, ``sanity.csv``) are
written by :func:`csv_text` and read by :func:`read_index` too.

No cell is ever run as a spreadsheet formula: a text cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return (OWASP's rule) is written with a
leading ``'``, and so is one that already starts with ``'``; the readers here take
exactly one leading ``'`` off again (:func:`csv_cell`, :func:`csv_value`). Numbers
such as ``-0.5`` are written as they are.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medxai.io.formats import file_columns
from medxai.io.writers import PROBE_NAME, STALE_TEMP

#: The index's columns before and after the file columns (those come from :mod:`medxai.io.formats`).
_LEADING_COLUMNS: tuple[str, ...] = (
    "image_id", "source_path", "series_uid", "method", "class_index", "class_name", "channel", "region",
    "component", "region_voxels", "region_score", "score", "label", "label_name", "predicted", "predicted_name",
    "status", "error",
)  # fmt: skip
_TRAILING_COLUMNS: tuple[str, ...] = (
    "relative_delta", "steps", "warning", "seconds", "evaluations", "reduce", "polarity", "clip", "explained",
    "output_kind", "activation", "mask_path", "source_shape", "spacing", "orientation", "source_key", "npy_bytes",
    "region_path", "sd_path", "stability", "stability_relative",
)  # fmt: skip


def map_key(row: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """``(image_id, method, class_index, region, component)``: the key of one map of an index row.

    Classifier rows leave ``region`` and ``component`` empty; a row written before region
    targets existed has no such columns and reads the same.
    """
    return (
        str(row["image_id"]), str(row["method"]), str(row.get("class_index", "")),
        str(row.get("region", "") or ""), str(row.get("component", "") or ""),
    )  # fmt: skip


def index_columns() -> tuple[str, ...]:
    """The index's columns, in order: the file columns are every registered output format's."""
    return (*_LEADING_COLUMNS, *file_columns(), *_TRAILING_COLUMNS)


INDEX_NAME, JOURNAL_NAME, RUN_NAME = "index.csv", "index.partial.csv", "run.json"
#: Files that the run, ``medxai evaluate`` and ``medxai report`` write at the top of a run folder.
RUN_FILES: tuple[str, ...] = (
    INDEX_NAME, JOURNAL_NAME, RUN_NAME, "metrics.csv", "summary.csv", "sanity.csv", "evaluation.json",
    "comparison.csv", "recommendation.csv", "report.html", ".medxai.lock",
)  # fmt: skip
#: Folders of a run folder whose whole content the run writes, and name patterns of other files it writes.
RUN_FOLDERS: tuple[str, ...] = ("maps", "regions")
RUN_PATTERNS: tuple[str, ...] = ("contact_sheet*.png",)


def is_run_file(name: str) -> bool:
    """Whether a run, ``medxai evaluate`` or ``report`` writes a file of this name at the top of a run folder.

    Their temporary names (``.index.csv.<12 hex>.tmp``) and the writability probe's count too.
    """
    temp = STALE_TEMP.match(name)
    target = name if temp is None else temp["target"]
    return (
        target in RUN_FILES
        or (temp is not None and target == PROBE_NAME)
        or any(fnmatch.fnmatch(target, pattern) for pattern in RUN_PATTERNS)
    )


#: What a spreadsheet reads as the start of a formula (OWASP's CSV injection rule).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def csv_cell(value: str) -> str:
    """A cell's text as written: formula-like text gets a leading ``'``; :func:`csv_value` undoes it.

    A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return and is not a
    number, or that starts with ``'`` already, gets one more ``'`` in front, so a spreadsheet
    shows it as text instead of running it.

    Example:
        >>> csv_cell("=HYPERLINK(1)"), csv_cell("-0.5"), csv_cell("'a"), csv_cell("a")
        ("'=HYPERLINK(1)", '-0.5', "''a", 'a')
    """
    if value.startswith(_QUOTE) or (value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value)):
        return _QUOTE + value
    return value


def csv_value(cell: str) -> str:
    """The value a cell written by :func:`csv_cell` holds (one leading ``'`` taken off)."""
    return cell[1:] if cell.startswith(_QUOTE) else cell


def read_index(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of an index (or journal) file, every cell a string as it was written.

    A cell's leading ``'`` (added by :func:`csv_cell` so that no spreadsheet runs it) is taken off.

    A torn last line (a run killed mid-write) is dropped, and so is any row
    with more or fewer cells than the header. A missing file has no header
    and no rows.

    Raises:
        OSError, UnicodeDecodeError, csv.Error: the file cannot be read as CSV.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "index.csv")
        >>> _ = open(path, "w").write("image_id,method\\na,ig\\nb,i")
        >>> read_index(path)
        (['image_id', 'method'], [{'image_id': 'a', 'method': 'ig'}])
    """
    path = Path(path)
    if not path.exists():
        return [], []
    with open(path, encoding="utf-8", newline="") as handle:  # a carriage return inside a cell stays one
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    rows = [
        {key: csv_value(cell) for key, cell in row.items()}
        for row in reader
        if None not in row and None not in row.values()
    ]
    return list(reader.fieldnames or []), rows


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], header: bool = True) -> str:
    """Rows as CSV text in ``columns`` order (None and absent cells empty; text through :func:`csv_cell`)."""
    lines = [",".join(map(_quoted, columns))] if header else []
    for row in rows:
        lines.append(",".join(_quoted("" if row.get(k) is None else csv_cell(str(row[k]))) for k in columns))
    return "".join(line + "\n" for line in lines)


def _quoted(cell: str) -> str:
    # the csv module leaves a carriage return unquoted when lines end in "\n", and readers split the line there
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\r\n') else cell


def index_text(rows: Iterable[Mapping[str, Any]], header: bool) -> str:
    """Rows as index CSV text in :func:`index_columns` order (None and absent cells empty)."""
    return csv_text(rows, index_columns(), header)
