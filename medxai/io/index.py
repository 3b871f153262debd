"""The run folder's index: one CSV row per (image, method, class), read and written here only.

Two columns exist for resuming: ``source_key`` (a short hash of what decides the
image's maps: its id, path, label(s), mask path, series UID and the source file's
size and modification time, see :func:`medxai.pipeline.journal.source_key`) and
``npy_bytes`` (the size of the ``.npy`` map as written).

Every reader of ``index.csv`` and of the journal ``index.partial.csv`` (resume,
``medxai evaluate``, ``medxai report``) goes through :func:`read_index`, and
every writer through :func:`index_text`, so the format has one definition.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable, Mapping

INDEX_COLUMNS: tuple[str, ...] = (
    "image_id",
    "source_path",
    "series_uid",
    "method",
    "class_index",
    "class_name",
    "score",
    "label",
    "predicted",
    "status",
    "error",
    "npy_path",
    "png_path",
    "overlay_path",
    "nifti_path",
    "dicom_map_path",
    "dicom_overlay_path",
    "relative_delta",
    "steps",
    "warning",
    "seconds",
    "evaluations",
    "reduce",
    "polarity",
    "clip",
    "explained",
    "output_kind",
    "activation",
    "mask_path",
    "source_shape",
    "spacing",
    "orientation",
    "source_key",
    "npy_bytes",
)
#: The columns naming a row's map files (relative to the run folder; empty when not written).
FILE_COLUMNS: tuple[str, ...] = (
    "npy_path", "png_path", "overlay_path", "nifti_path", "dicom_map_path", "dicom_overlay_path"
)  # fmt: skip
INDEX_NAME, JOURNAL_NAME, RUN_NAME = "index.csv", "index.partial.csv", "run.json"
#: Files that the run, ``medxai evaluate`` and ``medxai report`` write at the top of a run folder.
RUN_FILES: tuple[str, ...] = (
    INDEX_NAME, JOURNAL_NAME, RUN_NAME, "metrics.csv", "summary.csv", "sanity.csv", "evaluation.json",
    "report.html", ".medxai.lock",
)  # fmt: skip
#: Folders of a run folder whose whole content the run writes, and name patterns of other files it writes.
RUN_FOLDERS: tuple[str, ...] = ("maps",)
RUN_PATTERNS: tuple[str, ...] = ("contact_sheet*.png",)


def read_index(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of an index (or journal) file, every cell a string.

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
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    rows = [row for row in reader if None not in row and None not in row.values()]
    return list(reader.fieldnames or []), rows


def index_text(rows: Iterable[Mapping[str, Any]], header: bool) -> str:
    """Rows as index CSV text in :data:`INDEX_COLUMNS` order (None and absent cells empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in INDEX_COLUMNS})
    return buffer.getvalue()
