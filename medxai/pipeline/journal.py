"""What a run folder remembers between runs: the fingerprint, the finished maps, the provenance.

A run writes ``index.partial.csv`` (the journal) as images finish, ``index.csv``
at the end and ``run.json`` (with the fingerprint) at the start and the end. A
resumed run reuses the finished rows of the index and the journal only when the
fingerprint of the settings that decide a map is unchanged. Rows are read with
:func:`medxai.io.index.read_index`, the one reader of the index.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from medxai._version import __version__
from medxai.io.index import FILE_COLUMNS, INDEX_COLUMNS, INDEX_NAME, JOURNAL_NAME, RUN_NAME, read_index
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
    for key in ("resume", "progress", "overlap_io", "executor", "dask", "read_timeout"):
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
    return rows if header == list(INDEX_COLUMNS) else []


def completed_rows(out: Path, methods: set[str]) -> dict[str, list[dict[str, str]]]:
    """Rows of the images whose every map (one per method and class) is finished, with its files on disk."""
    by_image: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for row in _rows(out / INDEX_NAME) + _rows(out / JOURNAL_NAME):
        # the journal is newer than the index: a later row of the same map replaces an earlier one
        by_image.setdefault(row["image_id"], {})[(row["method"], row["class_index"])] = row
    complete = {}
    for image_id, maps in by_image.items():
        rows = list(maps.values())
        ok = all(r["status"] in ("ok", "skipped") for r in rows) and {r["method"] for r in rows} == methods
        files = [r[k] for r in rows for k in FILE_COLUMNS if r[k]]
        if ok and all((out / f).exists() for f in files):
            complete[image_id] = rows
    return complete


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
