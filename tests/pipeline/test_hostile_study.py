"""A study full of hostile files runs to its end: each bad file is an error row naming it, good images are explained."""

from __future__ import annotations

import csv
import os
import random
import shutil
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from _files import StuckReader, abandoned_reads_end, issue25_file, non_dicom_mutants, stub_read
from analytic_models import tiny_model
from pydicom.data import get_testdata_file
from study_helpers import read_index

import medxai
import medxai.io.formats as formats_module
import medxai.pipeline.explainer as explainer_module
import medxai.pipeline.item as item_module
from medxai.cli import main
from medxai.data.study_files import write_ct_dicom
from medxai.errors import ConfigError
from medxai.io.readers import READERS
from medxai.pipeline.explainer import Explainer
from medxai.pipeline.map_writer import MapWriter
from medxai.preprocess import Preprocessor

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
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
        )
    write_ct_dicom(root / "constant.dcm", np.full((16, 16), 40.0), uid_seed="constant")
    names = [p.name for p in good + bad] + [
        "bomb.png",
        "empty.dcm",
        "text.dcm",
        "folder.png",
        "huge.npy",
        "constant.dcm",
    ]
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


# ------------------------------------------------ one image's failure at any step (issue 19)


class FakePanic(BaseException):
    """Like pyo3's PanicException: a BaseException, missed by ``except Exception``."""


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """The tiny model, a good NPY image, a NIfTI placed in the patient (``bad.nii``) and hostile non-DICOM files."""
    root = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(1)
    np.save(root / "good.npy", rng.random((16, 16)).astype(np.float32))
    nib.save(nib.Nifti1Image(rng.random((16, 16)).astype(np.float32), np.diag([0.7, 0.7, 1.0, 1.0])), root / "bad.nii")
    non_dicom_mutants(root / "fuzz")
    tiny_model().save(root / "model.keras")
    return root


def run_study(
    root: Path, out: str, images: dict[str, str], formats=("npy",), cli: bool = False, data=None, **runtime
) -> tuple:
    """Run ``images`` (id: file under ``root``) with one method, through ``medxai.run`` or the ``medxai run``
    command line (``cli``), with more ``data`` settings; the summary (the exit code for the CLI) and the index
    rows by id."""
    with open(root / f"{out}.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("image_id", "path"), *images.items()])
    config = {
        "model": {"path": str(root / "model.keras")},
        "data": {"manifest": str(root / f"{out}.csv"), "id_column": "image_id", **(data or {})},
        "methods": ["gradient"],
        "output": {"dir": str(root / out), "formats": list(formats)},
        "runtime": {"batch_size": 8, "progress": False, "read_timeout": 30, **runtime},
    }
    if cli:
        (root / f"{out}.yaml").write_text(yaml.safe_dump(config))
        summary = main(["run", str(root / f"{out}.yaml")])
    else:
        summary = medxai.run(config)
    rows: dict[str, list[dict[str, str]]] = {}
    for row in read_index(root / out / "index.csv"):
        rows.setdefault(row["image_id"], []).append(row)
    return summary, rows


def _break(monkeypatch, step: str) -> str:
    """Make ``step`` fail for ``bad.nii`` only; the text its error row must hold."""

    def bad(path) -> bool:
        return os.path.basename(str(path)).startswith("bad")

    if step == "read":
        real_read = explainer_module.read_image

        def read(path, **kwargs):
            if bad(path):
                raise FakePanic("read")
            return real_read(path, **kwargs)

        monkeypatch.setattr(explainer_module, "read_image", read)
    elif step == "geometry":  # the issue's failure: nibabel's aff2axcodes on a hostile affine

        def orientation(affine, ndim):
            raise np.linalg.LinAlgError("SVD did not converge")

        monkeypatch.setattr(item_module, "orientation_code", orientation)  # only the NIfTI has a place in the patient
        return "LinAlgError: SVD did not converge"
    elif step == "preprocess":
        real_call = Preprocessor.__call__

        def preprocess(self, image):
            if bad(image.source_path):
                raise FakePanic("preprocess")
            return real_call(self, image)

        monkeypatch.setattr(Preprocessor, "__call__", preprocess)
    elif step in ("score", "explain"):
        name = "predict" if step == "score" else "explain"
        real = getattr(Explainer, name)

        def broken(self, *args):
            items = args[0] if step == "score" else args[1]
            if any(bad(item.row.path) for item in items):
                raise FakePanic(step)
            return real(self, *args)

        monkeypatch.setattr(Explainer, name, broken)
    elif step == "write":
        real_write = formats_module.write_npy

        def write(path, array):
            if bad(path):
                raise FakePanic("write")
            real_write(path, array)

        monkeypatch.setattr(formats_module, "write_npy", write)
    return f"FakePanic: {step}"


@pytest.mark.parametrize("step", ["read", "geometry", "preprocess", "score", "explain", "write"])
def test_a_failure_at_any_step_of_one_image_is_its_error_row_and_its_chunk_companion_gets_its_maps(
    pair, monkeypatch, step
):
    expected = _break(monkeypatch, step)
    summary, rows = run_study(pair, f"step-{step}", {"bad": "bad.nii", "good": "good.npy"})  # one chunk (batch_size 8)
    assert summary.images == 2 and summary.errors == 1 and summary.exit_code == 1
    assert rows["good"] and all(
        r["status"] == "ok" and (pair / f"step-{step}" / r["npy_path"]).is_file() for r in rows["good"]
    )
    for row in rows["bad"]:
        assert row["status"] == "error" and not row["npy_path"], row
        assert str(pair / "bad.nii") in row["error"] and expected in row["error"], row["error"]
    assert not list((pair / f"step-{step}").rglob("bad_*"))  # no file of the failed image is left


def test_a_handful_of_hostile_non_dicom_files_and_a_good_image_in_one_chunk_on_the_command_line(pair, capsys):
    names = ["nan-affine.nii", "inf-affine.nii", "nan-affine-3d.nii", "objects.npy", "lies.npy", "nan-values.npy"]
    images = {name: f"fuzz/{name}" for name in names} | {"good": "good.npy"}
    code, rows = run_study(pair, "handful", images, formats=("npy", "png"), cli=True)
    captured = capsys.readouterr()
    assert code == 1 and "7 images (0 resumed, 3 with warnings), 3 maps, 4 errors" in captured.out, captured
    assert "Traceback" not in captured.err and "failed images (see the index's error column)" in captured.err
    assert rows["good"][0]["status"] == "ok"
    for name in ("nan-affine.nii", "inf-affine.nii"):  # placed nowhere, but explained: maps with a warning
        row = rows[name][0]
        assert row["status"] == "ok" and (pair / "handful" / row["npy_path"]).is_file(), row["error"]
        assert row["spacing"] == row["orientation"] == "" and "NaN or infinite values" in row["warning"]
    for name in ("nan-affine-3d.nii", "objects.npy", "lies.npy", "nan-values.npy"):
        row = rows[name][0]
        assert row["status"] == "error" and str(pair / "fuzz" / name) in row["error"], row


def test_a_nifti_map_of_a_source_with_a_nan_affine_is_an_error_row_naming_it(pair):
    summary, rows = run_study(
        pair, "nan-nifti", {"nan": "fuzz/nan-affine.nii", "good": "good.npy"}, formats=("npy", "nifti")
    )
    assert rows["good"][0]["status"] == "ok" and (pair / "nan-nifti" / rows["good"][0]["nifti_path"]).is_file()
    error = rows["nan"][0]["error"]
    assert rows["nan"][0]["status"] == "error" and str(pair / "fuzz" / "nan-affine.nii") in error
    assert "the source's affine holds NaN or infinite values" in error
    assert summary.errors == 1


def test_a_corrupt_rle_image_is_an_error_row_and_under_warn_an_ok_row_with_its_warning(pair):
    path = issue25_file(pair / "overrun.dcm")  # issue 25: decoded by pydicom, 191 of 4096 pixels wrong, silently
    images = {"bad": path.name, "good": "good.npy"}
    problem = "frame 1 of 1: RLE segment 2 of 2 (4160 bytes at byte 1948) decodes past the 4096 bytes"
    _, rows = run_study(pair, "corrupt-default", images)
    [bad] = rows["bad"]
    assert bad["status"] == "error" and bad["error"].startswith(f"corrupt DICOM pixel data: {path} ({problem}"), bad
    assert rows["good"][0]["status"] == "ok"
    _, rows = run_study(pair, "corrupt-warn", images, data={"on_corrupt": "warn"})
    [bad] = rows["bad"]
    assert bad["status"] == "ok" and bad["npy_path"], bad
    assert bad["warning"].startswith(f"corrupt pixel data ({problem}"), bad["warning"]
    assert "pydicom decoded it anyway, the pixels may be wrong" in bad["warning"]


def test_on_corrupt_is_validated_naming_the_key_and_the_allowed_values(pair):
    with pytest.raises(ConfigError, match="data.on_corrupt: input should be 'error' or 'warn', got 'ignore'"):
        run_study(pair, "corrupt-bad-setting", {"good": "good.npy"}, data={"on_corrupt": "ignore"})


def test_abandoned_reads_in_a_run_never_outnumber_the_cap_and_the_images_they_hold_back_are_error_rows(
    pair, monkeypatch
):
    reader = StuckReader(READERS["npy"].read)
    stub_read(monkeypatch, "npy", reader)
    images = {"good": "good.npy"}
    for k in range(5):
        shutil.copy(pair / "good.npy", pair / f"slow{k}.npy")
        images[f"slow{k}"] = f"slow{k}.npy"
    try:  # batch_size 2: three chunks, read two at a time (overlap_io)
        summary, rows = run_study(pair, "abandoned", images, batch_size=2, read_timeout=0.3, max_abandoned_reads=2)
        assert reader.most <= 2  # five stuck reads asked for, never more than two at once
    finally:
        reader.release()
    assert rows["good"][0]["status"] == "ok" and summary.errors == 5
    refused = 0
    for k in range(5):
        row = rows[f"slow{k}"][0]
        assert row["status"] == "error" and str(pair / f"slow{k}.npy") in row["error"], row
        refused += "runtime.max_abandoned_reads is 2" in row["error"]
    assert refused >= 1  # later images were refused unread rather than abandoned too
    assert abandoned_reads_end()  # the released reads end in the background


def test_an_output_folder_removed_mid_run_leaves_no_ok_row_without_its_file(pair, monkeypatch, capsys):
    out = pair / "removed"
    real_settle, calls = MapWriter.settle, {"n": 0}

    def settle(self, rows):
        settled = real_settle(self, rows)
        calls["n"] += 1
        if calls["n"] == 2:  # two images are settled: someone deletes the run folder
            shutil.rmtree(out)
        return settled

    monkeypatch.setattr(MapWriter, "settle", settle)
    images = {f"img{k}": "good.npy" for k in range(4)}
    summary, rows = run_study(pair, "removed", images, formats=("npy", "png"), batch_size=1, overlap_io=False)
    for image_rows in rows.values():
        for row in image_rows:
            if row["status"] == "ok":
                assert (out / row["npy_path"]).is_file() and (out / row["png_path"]).is_file(), row
            else:
                assert not row["npy_path"] and not row["png_path"], row
    for image_id in ("img0", "img1"):
        error = rows[image_id][0]["error"]
        assert rows[image_id][0]["status"] == "error" and "was removed during the run; run again" in error, error
        assert str(pair / "good.npy") in error and str(out / "maps" / "gradient") in error
    assert rows["img3"][0]["status"] == "ok"  # written after the removal: the run recreated the folder
    assert summary.errors == sum(r[0]["status"] == "error" for r in rows.values())
    message = f"output.dir: the output folder was removed or cleaned while the run went on ({out})"
    assert any(message in w for w in summary.warnings), summary.warnings
    assert message in capsys.readouterr().err
