"""A study full of hostile files runs to its end: each bad file is an error row naming it, good images are explained."""

from __future__ import annotations

import csv
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import medxai
from analytic_models import tiny_model
from medxai.data.synthetic import write_ct_dicom
from study_helpers import read_index

SOURCES = ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "MR_small.dcm"]


def _png_bomb(path: Path, side: int) -> Path:
    """A valid greyscale PNG of side x side zeros, a few hundred KB on disk, written row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _mutants(folder: Path, count: int) -> list[Path]:
    """Deterministic byte-flipped and truncated copies of pydicom's test files."""
    rng = random.Random(0)
    sources = [p for p in (get_testdata_file(n, download=False) for n in SOURCES) if p]
    written = []
    for k in range(count):
        raw = bytearray(Path(sources[k % len(sources)]).read_bytes())
        if k % 3 == 2:
            raw = raw[: rng.randrange(200, len(raw))]
        else:
            for _ in range(rng.randrange(1, 8)):
                raw[rng.randrange(len(raw) // 2, len(raw))] = rng.randrange(256)
        written.append(folder / f"mutant_{k:02d}.dcm")
        written[-1].write_bytes(bytes(raw))
    return written


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    good = [write_ct_dicom(root / f"good_{k}.dcm", rng.normal(40, 200, (16, 16)).round(), uid_seed=k) for k in range(3)]
    bad = _mutants(root, 24)
    _png_bomb(root / "bomb.png", 13000)
    (root / "empty.dcm").write_bytes(b"")
    (root / "text.dcm").write_text("not a DICOM file")
    (root / "folder.png").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.dcm")
    with open(root / "huge.npy", "wb") as handle:  # a header declaring 10^10 values, and no data
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)})
    write_ct_dicom(root / "constant.dcm", np.full((16, 16), 40.0), uid_seed="constant")
    names = [p.name for p in good + bad] + ["bomb.png", "empty.dcm", "text.dcm", "folder.png", "huge.npy", "constant.dcm"]
    if hasattr(os, "mkfifo"):
        names.append("fifo.dcm")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path"])
        writer.writerows((name, name) for name in names)
    tiny_model().save(root / "model.keras")
    return root


def test_a_study_of_hostile_files_finishes_with_an_error_row_naming_each_bad_file(hostile):
    config = {
        "model": {"path": str(hostile / "model.keras")},
        "data": {"manifest": str(hostile / "manifest.csv"), "id_column": "image_id"},
        "methods": ["gradient"],
        "output": {"dir": str(hostile / "run"), "formats": ["npy", "png"]},
        "runtime": {"batch_size": 4, "progress": False, "read_timeout": 30},
    }
    summary = medxai.run(config)
    rows = {r["image_id"]: r for r in read_index(hostile / "run" / "index.csv")}
    assert len(rows) == summary.images
    for name in ("good_0.dcm", "good_1.dcm", "good_2.dcm", "constant.dcm"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert (hostile / "run" / rows[name]["npy_path"]).is_file()
    assert "the image is constant" in rows["constant.dcm"]["warning"]
    assert summary.warned >= 1
    expected = {
        "bomb.png": "image too large: 13000 x 13000",
        "empty.dcm": "empty file",
        "folder.png": "",
        "huge.npy": "image too large",
        "text.dcm": "",
        "fifo.dcm": "not a regular file",
    }
    for name, message in expected.items():
        if name not in rows:
            continue
        row = rows[name]
        assert row["status"] == "error" and message in row["error"], (name, row["error"])
    for name, row in rows.items():
        if row["status"] == "error":
            assert str(hostile / name) in row["error"], (name, row["error"])  # every error names its file
            assert not any(row[k] for k in ("npy_path", "png_path")), name  # and points at no file
    mutants = [r for n, r in rows.items() if n.startswith("mutant_")]
    assert {r["status"] for r in mutants} == {"ok", "error"} and len(mutants) == 24  # both outcomes occur
    assert summary.errors == sum(1 for r in rows.values() if r["status"] == "error")
