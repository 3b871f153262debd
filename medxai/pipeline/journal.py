"""What a run folder remembers between runs: the fingerprint, the finished maps, the provenance.

A run writes ``index.partial.csv`` (the journal) as images finish, ``index.csv``
at the end and ``run.json`` (with the fingerprint) at the start and the end. A
resumed run reuses the finished rows of the index and the journal only when the
fingerprint of the settings that decide a map is unchanged, and then only the rows
of images whose inputs are unchanged, their bytes included (:func:`source_key`,
:func:`stale_reason`), and
whose files are all there and whole (:func:`completed_rows`). Rows are read with
:func:`medxai.io.index.read_index`, the one reader of the index.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from medxai._version import __version__
from medxai.io.formats import file_columns
from medxai.io.index import INDEX_NAME, JOURNAL_NAME, RUN_NAME, index_columns, map_key, read_index
from medxai.io.manifest import ManifestRow
from medxai.io.writers import npy_problem
from medxai.pipeline.config import Config


def fingerprint(config: Config, model_checksum: str) -> str:
    """What decides the maps and their index rows: a resumed run reuses rows only when this is unchanged.

    Every setting is in it except the few below that never change a map's values or files, so a
    setting added later is covered until someone decides otherwise. The ``data`` section is in
    because it decides which image an id names (ids are row numbers without ``data.id_column``).
    """
    data = config.to_dict()
    data["model"]["checksum"] = model_checksum
    del data["output"]["dir"]  # where the run is, not what it holds
    data.pop("evaluate", None)  # computed after the run from the finished maps; never changes them
    runtime = data["runtime"]
    for key in ("resume", "progress", "overlap_io", "executor", "dask", "read_timeout", "max_abandoned_reads"):
        runtime.pop(key, None)  # how and where the maps are computed, not what they are
    # batch_size bounds memory only: maps agree to float rounding at any batch size
    # (tests/methods/test_engine.py), and lowering it after running out of memory is the usual reason to resume.
    runtime.pop("batch_size", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def previous_fingerprint(out: Path) -> str | None:
    """The fingerprint in the folder's ``run.json``; None when there is none or it cannot be read."""
    try:
        return json.loads((out / RUN_NAME).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _rows(path: Path) -> list[dict[str, str]]:
    """Rows of an index or journal of this version of medxai; another header means none."""
    header, rows = read_index(path)
    return rows if header == list(index_columns()) else []


def _file_state(path: str) -> Any:
    """What a source is first judged by: size and modification time (of every file, for a folder)."""
    try:
        info = os.stat(path)
    except OSError as err:
        return ["unreadable", err.errno]
    if not os.path.isdir(path):
        return [info.st_size, info.st_mtime_ns]
    files = []
    try:
        for name in _series_files(path):
            try:
                stat = os.stat(os.path.join(path, name))
                files.append([name, stat.st_size, stat.st_mtime_ns])
            except OSError:
                files.append([name, "unreadable"])
    except OSError as err:
        return ["unreadable", err.errno]
    return ["folder", hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()]


def _series_files(folder: str) -> list[str]:
    """The names of the regular files of a series folder that the series reader may read, sorted."""
    with os.scandir(folder) as entries:
        # the series reader skips hidden files too
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())


def content_digest(path: str) -> str:
    """A short SHA-256 of a source's bytes (of every file, for a series folder), read in a stream.

    It tells a replaced file from the old one when size and modification time were kept
    (``cp -p``, ``rsync -a``, ``tar x``, ``touch -r``). A file that cannot be read has a
    digest naming the error, so it is never taken for unchanged.
    """
    digest = hashlib.sha256()
    try:
        if os.path.isdir(path):
            for name in _series_files(path):
                digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
                _stream(os.path.join(path, name), digest)
        else:
            _stream(path, digest)
    except OSError as err:
        return f"unreadable{err.errno}"
    return digest.hexdigest()[:16]


def _stream(path: str, digest: Any) -> None:
    # only regular files: a FIFO named like an image would block the read
    if not os.path.isfile(path):
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    digest.update(b"\0")


def source_key(row: ManifestRow) -> str:
    """A short hash of what decides an image's maps and index rows, besides the run's settings.

    Two parts, ``<state>-<content>``. The state hashes the image id, path, label(s), mask path
    and series UID from the manifest, and the source's size and modification time (for a DICOM
    series folder: of every file in it); and a region mask's path, size and time where
    ``data.region_column`` gives one. The content is :func:`content_digest` of the source's
    bytes. A resumed run reuses an image's rows only when both are unchanged.
    """
    return f"{_state_key(row)}-{content_digest(row.path)}"


def _state_key(row: ManifestRow) -> str:
    state = [row.image_id, row.path, list(row.labels), row.mask_path or "", row.series_uid or "", _file_state(row.path)]
    if row.region_path:  # the region mask decides a segmentation model's maps (absent: the key is as before)
        state += [row.region_path, _file_state(row.region_path)]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:16]


def stale_reason(rows: list[dict[str, str]], row: ManifestRow) -> str | None:
    """Why an image's finished ``rows`` no longer describe its manifest ``row``; None when they do.

    The source's content is hashed only when everything else, its size and modification
    time included, is unchanged.

    Args:
        rows: the image's rows in the previous index or journal.
        row: the image's row in the manifest now.
    """
    first = rows[0]
    if first["source_path"] != row.path:
        return "path"
    if first["label"] != ";".join(map(str, row.labels)):
        return "label"
    if first["mask_path"] != (row.mask_path or ""):
        return "mask"
    if first["series_uid"] != (row.series_uid or ""):
        return "series_uid"
    state, _, content = first["source_key"].partition("-")
    if any(r["source_key"] != first["source_key"] for r in rows) or state != _state_key(row):
        return "file"  # its size or modification time
    if not content:
        return "no content hash recorded (an older medxai)"
    if content != content_digest(row.path):
        return "other content, same size and time"
    return None


def completed_rows(
    out: Path, methods: set[str], damaged: MutableMapping[str, str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """Rows of the images whose every map (one per method and class) is finished, with its files whole on disk.

    Every file a row names must exist, and its ``.npy`` map must hold the bytes its
    header announces and the index recorded (``npy_bytes``): a truncated map is not finished.

    Args:
        out: the run folder.
        methods: the run's method names: an image needs rows of each.
        damaged: if given, receives ``image_id -> reason`` for images whose rows are
            finished but whose files are missing or damaged.
    """
    by_image: dict[str, list[dict[str, str]]] = {}
    for source in (_rows(out / INDEX_NAME), _rows(out / JOURNAL_NAME)):
        fresh: dict[str, list[dict[str, str]]] = {}
        for row in source:
            fresh.setdefault(row["image_id"], []).append(row)
        # the journal is newer than the index, and an image's rows are journaled together:
        # its rows there replace the index's
        by_image.update(fresh)
    complete = {}
    for image_id, rows in by_image.items():
        keys = [map_key(r) for r in rows]
        ok = all(r["status"] in ("ok", "skipped") for r in rows) and {r["method"] for r in rows} == methods
        if not ok or len(set(keys)) != len(keys):
            continue
        problem = _file_problem(out, rows)
        if problem is None:
            complete[image_id] = rows
        elif damaged is not None:
            damaged[image_id] = problem
    return complete


def _file_problem(out: Path, rows: list[dict[str, str]]) -> str | None:
    for row in rows:
        for column in (*file_columns(), "region_path"):  # the region file: the report's outline, the evaluation's
            name = row.get(column, "")
            if name and not (out / name).exists():
                return f"{name} is missing"
        if row["npy_path"]:
            recorded = row["npy_bytes"]
            problem = npy_problem(out / row["npy_path"], int(recorded) if recorded.isdigit() else None)
            if problem is not None or not recorded.isdigit():
                return problem or f"{row['npy_path']}: no recorded size"
    return None


def versions() -> dict[str, str]:
    """The versions that made the maps, for ``run.json``."""
    import keras
    import pydicom
    import tensorflow as tf

    return {
        "medxai": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
    }


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (anything else as its string)."""
    return json.loads(json.dumps(value, default=str))
