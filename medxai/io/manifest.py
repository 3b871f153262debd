"""Dataset manifests (CSV/TSV, one image per row) and file-name-safe ids."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medxai._validation import describe_frame
from medxai.errors import ManifestError

__all__ = ["ManifestError", "ManifestRow", "read_manifest", "safe_id", "MAX_ID_LENGTH"]

#: The longest id :func:`safe_id` returns (well under the usual 255-byte file-name limit).
MAX_ID_LENGTH = 120
_HASH_CHARS = 10
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# Windows refuses these as file names whatever the extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


@dataclass(frozen=True)
class ManifestRow:
    """One image listed in a manifest.

    Attributes:
        image_id: the id as written in the manifest (the row number as text when
            there is no id column); not yet made safe, see :func:`safe_id`.
        path: absolute image path, resolved against the manifest's root.
        label: the integer class label when the row has exactly one, else None.
        mask_path: absolute mask path, or None when absent/empty.
        row: 0-based row number (the first row after the header is 0).
        series_uid: the DICOM SeriesInstanceUID to read from ``path`` (a series
            folder), or None when absent/empty.
        labels: every class label of the row (several for multi-label data,
            written ``2;3;11``), in the order given; empty when absent.
        region_path: absolute path of the region mask a segmentation model's
            ``targets: {region: manifest}`` explains (``data.region_column``), or None.
    """

    image_id: str
    path: str
    label: int | None
    mask_path: str | None
    row: int
    series_uid: str | None = None
    labels: tuple[int, ...] = ()
    region_path: str | None = None

    def __post_init__(self) -> None:
        if self.label is not None and not self.labels:
            object.__setattr__(self, "labels", (self.label,))


def read_manifest(
    path: str | os.PathLike | pd.DataFrame,
    *,
    path_column: str = "path",
    id_column: str | None = None,
    label_column: str | None = None,
    mask_column: str | None = None,
    root: str | os.PathLike | None = None,
    region_column: str | None = None,
    series_column: str | None = None,
    class_names: Sequence[str] | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> list[ManifestRow]:
    """Reads a CSV manifest with a header row (the delimiter sniffed, or ``delimiter``), or a DataFrame of one.

    A DataFrame's cells are read as the file's text would be (missing values are empty cells)
    and go through the same checks; messages name it by its shape and columns, never its cells.

    Args:
        path: the manifest file, or a pandas DataFrame with the same columns.
        path_column: column holding image paths.
        id_column: column holding image ids; None uses the row numbers.
        label_column: column holding class labels: an integer ("1", "1.0"), several
            separated by ``;`` (multi-label, "2;3;11"), class names from ``class_names``,
            or empty.
        mask_column: column holding mask paths (empty cells mean no mask).
        region_column: column holding region mask paths for a segmentation model's
            ``targets: {region: manifest}`` (empty cells: no region to explain).
        root: folder that relative paths resolve against; default: the manifest's folder
            (a DataFrame's: the current directory).
        series_column: column holding DICOM SeriesInstanceUIDs, for paths that are
            folders of several series (empty cells: the folder's only series).
        class_names: the model's class names, which labels may use instead of numbers.
        delimiter: the column separator; None sniffs it among ``, ; tab |`` (``.tsv``/``.tab``: tab).
        encoding: the text encoding (a UTF-8 or UTF-16 byte-order mark is always honoured).

    Raises:
        ManifestError: unreadable or empty manifest, text that is not in ``encoding``
            (naming the line), a missing column, or rows with problems: an empty path
            or id, a label that is not a class, duplicate ids, ids that become the same
            file name. Row problems are all listed, by line number (the header is line 1).
    """
    if isinstance(path, pd.DataFrame):
        name = describe_frame(path)
        table = _frame_table(path, name)
        manifest: Path | str = name
        folder = Path.cwd()
    else:
        manifest = Path(os.fspath(path))
        table = _read_table(manifest, delimiter, encoding)
        folder = manifest.parent
    named = (path_column, id_column, label_column, mask_column, series_column, region_column)
    columns = [c for c in named if c is not None]
    missing = [c for c in dict.fromkeys(columns) if c not in table.columns]
    if missing:
        hint = ""
        if len(table.columns) == 1 and any(ch in table.columns[0] for ch in ",;\t|"):
            hint = " (one column only: is the delimiter right? set data.delimiter)"
        raise ManifestError(
            f"{manifest}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the manifest has: {', '.join(map(repr, table.columns))}{hint}"
        )
    base = Path(os.path.abspath(folder if root is None else os.fspath(root)))

    rows: list[ManifestRow] = []
    problems: list[str] = []
    for i, record in enumerate(table.to_dict("records")):
        line = f"line {i + 2}"
        image_path = record[path_column].strip()
        image_id = str(i) if id_column is None else record[id_column].strip()
        if not image_path:
            problems.append(f"{line}: empty {path_column!r}")
        if not image_id:
            problems.append(f"{line}: empty {id_column!r}")
        try:
            labels = () if label_column is None else _labels(record[label_column], line, label_column, class_names)
        except ValueError as err:
            problems.append(str(err))
            labels = ()
        if not image_path or not image_id:
            continue
        mask = record[mask_column].strip() if mask_column is not None else ""
        series = record[series_column].strip() if series_column is not None else ""
        region = record[region_column].strip() if region_column is not None else ""
        rows.append(
            ManifestRow(
                image_id=image_id,
                path=_resolve(base, image_path),
                label=labels[0] if len(labels) == 1 else None,
                mask_path=_resolve(base, mask) if mask else None,
                row=i,
                series_uid=series or None,
                labels=labels,
                region_path=_resolve(base, region) if region else None,
            )
        )
    problems.extend(_id_problems(rows))
    if problems:
        shown = problems[:_SHOWN_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ManifestError(f"{manifest}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more)
    return rows


_SHOWN_PROBLEMS = 20
_DELIMITERS = ",;\t|"


def _decode(manifest: Path, raw: bytes, encoding: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a BOM from a spreadsheet is not part of the first column's name
    try:
        return raw.decode(encoding)
    except LookupError:
        raise ManifestError(f"{manifest}: unknown encoding {encoding!r} (data.encoding)") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(
            f"{manifest}: line {line} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); "
            "set data.encoding to the file's encoding, e.g. latin-1, cp1252 or utf-16"
        ) from None


def _sniff(text: str, manifest: Path) -> str:
    if manifest.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = text.splitlines()[0] if text else ""
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","


def _read_table(manifest: Path, delimiter: str | None, encoding: str) -> pd.DataFrame:
    if not manifest.is_file():
        raise ManifestError(f"manifest not found: {manifest}")
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{manifest}: cannot read the manifest ({exc.strerror or exc})") from None
    text = _decode(manifest, raw, encoding)
    if not text.strip():
        raise ManifestError(f"{manifest}: the manifest is empty")
    sep = delimiter or _sniff(text, manifest)
    try:
        # Everything as text, nothing turned into NaN: the checks below decide.
        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{manifest}: the manifest is empty") from None
    except Exception as exc:
        raise ManifestError(f"{manifest}: cannot read the manifest ({type(exc).__name__}: {exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if len(table) == 0:
        raise ManifestError(f"{manifest}: the manifest has a header but no rows")
    return table


def _frame_table(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A DataFrame's cells as the text a file would hold: strings, missing values empty."""
    if len(frame) == 0:
        raise ManifestError(f"{name}: the manifest has no rows")
    table = frame.reset_index(drop=True)
    table = table.astype(object).where(table.notna(), "").astype(str)
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _labels(value: str, line: str, column: str, class_names: Sequence[str] | None) -> tuple[int, ...]:
    """The class labels of one cell; ValueError (the message names the line) for one that is not a class."""
    parts = [p.strip() for p in value.split(";")]
    if not any(parts):
        return ()
    labels: list[int] = []
    for part in parts:
        if not part:
            raise ValueError(f"{line}: empty label in {value!r} (column {column!r})")
        if class_names is not None and part in class_names:
            labels.append(list(class_names).index(part))
            continue
        try:
            number = float(part)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number):
            known = f" or a class name ({', '.join(class_names)})" if class_names else ""
            raise ValueError(f"{line}: label {part!r} in column {column!r} is not an integer{known}")
        if int(number) in labels:
            raise ValueError(f"{line}: label {part!r} appears twice in {value!r}")
        labels.append(int(number))
    return tuple(labels)


def _resolve(base: Path, value: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))


def _id_problems(rows: list[ManifestRow]) -> list[str]:
    """Duplicate ids, and distinct ids that :func:`safe_id` turns into the same file name."""
    lines: dict[str, list[int]] = {}
    for r in rows:
        lines.setdefault(r.image_id, []).append(r.row + 2)
    problems = [
        f"duplicate image id {image_id!r} (lines {', '.join(map(str, at))})"
        for image_id, at in lines.items()
        if len(at) > 1
    ]
    by_file: dict[str, list[str]] = {}
    for image_id in lines:
        by_file.setdefault(safe_id(image_id), []).append(image_id)
    problems.extend(
        f"image ids {' and '.join(map(repr, ids))} would share the file name {name!r}; rename one"
        for name, ids in by_file.items()
        if len(ids) > 1
    )
    return problems


def safe_id(image_id: str) -> str:
    """A deterministic, file-name-safe version of an image id.

    Keeps ``[A-Za-z0-9._-]``, replaces anything else by ``_``, strips leading
    and trailing dots, turns leading ``-`` into ``_`` (a file name is never read as a command's
    option), caps the length at :data:`MAX_ID_LENGTH`. When anything
    had to change, a short hash of the original id is appended, so distinct
    ids stay distinct. The result never contains a path separator and is
    never empty, ``.``, ``..`` or a reserved Windows device name. (Ids that
    differ only by letter case still collide on case-insensitive file systems.)
    """
    image_id = str(image_id)
    cleaned = _UNSAFE.sub("_", image_id).strip(".")
    cleaned = "_" * (len(cleaned) - len(cleaned.lstrip("-"))) + cleaned.lstrip("-")  # never read as an option
    changed = cleaned != image_id or not cleaned or cleaned.split(".")[0].upper() in _RESERVED
    if not changed and len(cleaned) <= MAX_ID_LENGTH:
        return cleaned
    digest = hashlib.sha256(image_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    stem = cleaned[: MAX_ID_LENGTH - _HASH_CHARS - 1].rstrip(".") or "id"
    return f"{stem}_{digest}"
