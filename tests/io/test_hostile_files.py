"""Hostile inputs never take a run down: every problem is an ImageReadError naming the file (issue 14).

Fuzzed DICOM files (pydicom's own test files, mutated with a seeded RNG) and
PNG/JPEG/TIFF/NIfTI/NPY files (issue 19), decoder panics and aborts, decompression and allocation bombs, special files
(FIFOs, link loops, folders named like images), a time limit, and suspicious
headers that must be refused or reported in ``meta["warnings"]``.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import os
import random
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from _files import (
    StuckReader,
    abandoned_reads_end,
    dicom_dataset,
    dicom_series,
    frames_of,
    nifti_with_affine,
    non_dicom_mutants,
    pydicom_file,
    save,
    stub_read,
    with_frames,
)
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from medxai.io import CorruptPixelDataError, ImageReadError, LoadedImage, dicom_decode, read_image
from medxai.io.dicom import read_dicom
from medxai.io.limits import DEFAULT_MAX_PIXELS, abandoned_reads, check_declared_size, convert_failure, stop_waiting
from medxai.io.readers import READERS

MAX = DEFAULT_MAX_PIXELS  # 2**27, the config's data.max_pixels default
MIB = 1 << 20


def expect_error(path: Path, match: str | None = None, **kwargs) -> ImageReadError:
    """read_image(path) must raise an ImageReadError naming the file (and matching ``match``)."""
    with pytest.raises(ImageReadError) as caught:
        read_image(path, **kwargs)
    message = str(caught.value)
    assert os.fspath(path) in message, message
    if match is not None:
        assert match in message, message
    return caught.value


def peak_bytes(func) -> int:
    """Peak Python-tracked allocation (numpy arrays included) while ``func`` runs."""
    tracemalloc.start()
    try:
        func()
    except ImageReadError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------- fuzzing

FUZZ_SOURCES = [
    "MR_small_RLE.dcm",  # RLE, 16 bit grey
    "SC_rgb_rle.dcm",  # RLE, RGB
    "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_2frame.dcm",  # RLE multi-frame
    "JPEG2000.dcm",  # J2K
    "MR_small_jp2klossless.dcm",
    "JPEG-lossy.dcm",  # 12-bit JPEG extended (the GDCM fallback)
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline colour
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless colour
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS
    "MR_small.dcm",  # uncompressed
    "CT_small.dcm",
    "rtdose.dcm",  # uncompressed multi-frame
]
_TAGS = ["Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
         "PixelRepresentation", "PlanarConfiguration", "RescaleSlope", "WindowWidth"]  # fmt: skip
_VALUES = [0, 1, 3, 7, 12, 16, 32, 64, 255, 4096, 65535]


def _mutant(rng: random.Random, raw: bytes, pixel_at: int, how: str) -> bytes:
    data = bytearray(raw)
    if how == "pixels":  # flip bytes anywhere in the pixel data
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(pixel_at, len(data))] = rng.randrange(256)
    elif how == "codestream":  # the item tags and codestream headers at the start of the pixel data
        for _ in range(rng.randint(1, 3)):
            data[min(len(data) - 1, pixel_at + rng.randrange(120))] = rng.randrange(256)
    elif how == "header":
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(132, pixel_at)] = rng.randrange(256)
    elif how == "truncate":
        del data[rng.randrange(len(data)) :]
    elif how == "tag":  # a well-formed file whose pixel module lies
        ds = pydicom.dcmread(io.BytesIO(raw))
        keyword, value = rng.choice(_TAGS), rng.choice(_VALUES)
        setattr(ds, keyword, str(value) if keyword in ("NumberOfFrames", "RescaleSlope", "WindowWidth") else value)
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()
    return bytes(data)


def read_fuzzed(path: Path, outcomes: dict[str, int], *, finite: bool) -> list[str]:
    """Read a fuzzed file, counting an image or an ImageReadError in ``outcomes``; what else went wrong."""
    try:
        image = read_image(path, max_pixels=MAX, timeout=30)
    except ImageReadError as err:
        outcomes["error"] += 1
        return [] if os.fspath(path) in str(err) else [f"{path.name}: message without the path: {err}"]
    except BaseException as exc:  # noqa: BLE001 - recorded: nothing else may escape
        return [f"{path.name}: {type(exc).__module__}.{type(exc).__name__}: {exc}"]
    outcomes["image"] += 1
    if not (isinstance(image, LoadedImage) and image.array.dtype == np.float32 and image.array.ndim in (3, 4)):
        return [f"{path.name}: not a float32 (H, W, C) or (D, H, W, C) LoadedImage"]
    if finite and not np.isfinite(image.array).all():
        return [f"{path.name}: non-finite values"]
    return []


def test_fuzzed_dicom_files_give_an_image_or_an_image_read_error(tmp_path):
    rng = random.Random(14)
    hows = ["pixels", "codestream", "header", "truncate", "tag"]
    outcomes, escaped, slow = {"image": 0, "error": 0}, [], []
    for name in FUZZ_SOURCES:
        source = pydicom_file(name)
        raw = source.read_bytes()
        pixel_at = pydicom.dcmread(source)["PixelData"].file_tell
        for how in hows:
            path = tmp_path / f"{source.stem}-{how}.dcm"
            path.write_bytes(_mutant(rng, raw, pixel_at, how))
            start = time.perf_counter()
            escaped += read_fuzzed(path, outcomes, finite=True)
            if time.perf_counter() - start > 60:  # a hang guard, not a speed test
                slow.append(f"{path.name}: {time.perf_counter() - start:.1f} s")
    assert not escaped, "\n".join(escaped)
    assert not slow, "\n".join(slow)
    assert outcomes["image"] and outcomes["error"], outcomes  # both outcomes are exercised


def test_fuzzed_png_jpeg_tiff_nifti_and_npy_files_give_an_image_or_an_image_read_error(tmp_path):
    paths = non_dicom_mutants(tmp_path)
    assert len(paths) >= 40
    outcomes: dict[str, int] = {"image": 0, "error": 0}
    escaped = [
        problem for path in paths for problem in read_fuzzed(path, outcomes, finite=False)
    ]  # NaN pixels: preprocessing refuses them
    assert not escaped, "\n".join(escaped)
    assert outcomes["image"] >= 5 and outcomes["error"] >= 20, outcomes  # both outcomes are exercised


def _malformed_rle_mutant(rng: random.Random, frames: list[bytes], rows: int, columns: int) -> list[bytes] | None:
    """``frames`` with a few bytes of one frame's RLE header or segment data changed; None when the change left
    every segment decoding to Rows x Columns bytes by pydicom's own segment decoder (a changed pixel, not a
    malformed segment: no decoder can tell)."""
    from pydicom.pixels.decoders.rle import _rle_decode_segment  # the oracle: pydicom 3's PackBits decoder

    k = rng.randrange(len(frames))
    data = bytearray(frames[k])
    count, *offsets = struct.unpack_from("<16I", data)
    where = rng.choice(["header", "data"])
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(64) if where == "header" else rng.randrange(64, len(data))
        data[at] = (data[at] + rng.randrange(1, 256)) % 256  # always a different byte
    if where == "data":
        ends = [*offsets[1:count], len(data)]
        lengths = [len(_rle_decode_segment(bytes(data[offsets[i] : ends[i]]))) for i in range(count)]
        if all(length == rows * columns for length in lengths):
            return None
    return [*frames[:k], bytes(data), *frames[k + 1 :]]


def _expect_corrupt_or_warned(path: Path) -> list[str]:
    """An error naming the file by default; under warn an error or an image warned of; what went otherwise."""
    try:
        read_image(path, max_pixels=MAX, timeout=30)
        return [f"{path.name}: read without an error"]
    except CorruptPixelDataError as err:
        if os.fspath(path) not in str(err):
            return [f"{path.name}: message without the path: {err}"]
    except ImageReadError as err:
        return [f"{path.name}: not a CorruptPixelDataError: {err}"]
    try:
        image = read_image(path, max_pixels=MAX, timeout=30, on_corrupt="warn")
    except ImageReadError:
        return []
    return [] if any(w.startswith("corrupt pixel data (") for w in image.meta["warnings"]) else [f"{path.name}: silent"]


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_2frame.dcm"]
)
def test_fuzzed_rle_segment_headers_and_data_are_never_read_silently(tmp_path, name):
    source = pydicom_file(name)
    ds = pydicom.dcmread(source)
    frames = frames_of(source)
    rng = random.Random(25)
    mutants: list[Path] = []
    for attempt in range(60):
        mutant = _malformed_rle_mutant(rng, frames, ds.Rows, ds.Columns)
        if mutant is not None:
            mutants.append(with_frames(source, tmp_path / f"{source.stem}-{attempt}.dcm", mutant))
        if len(mutants) == 8:
            break
    assert len(mutants) == 8
    problems = [problem for path in mutants for problem in _expect_corrupt_or_warned(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_gdcm.dcm", "MR_small_jpeg_ls_lossless.dcm"])  # JPEG Lossless, JPEG-LS
def test_a_truncated_jpeg_lossless_frame_is_never_read_silently(tmp_path, name):
    source = pydicom_file(name)
    [frame] = frames_of(source)
    end = frame.rfind(b"\xff\xd9")  # the EOI marker (a pad byte may follow it)
    kept = [end + 1, end, end - 1, end - 40, len(frame) // 2, 200]
    mutants = [with_frames(source, tmp_path / f"cut{keep}.dcm", [frame[:keep]]) for keep in kept]
    problems = [problem for path in mutants for problem in _expect_corrupt_or_warned(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_nifti_with_a_non_finite_affine_is_read_with_a_warning(tmp_path, value):
    image = read_image(nifti_with_affine(tmp_path / "odd.nii", value))
    assert image.array.shape == (16, 16, 1)
    assert any("affine (sform or qform) holds NaN or infinite values" in w for w in image.meta["warnings"])


def _rle_panic_file(tmp_path: Path) -> Path | None:
    """MR_small_RLE.dcm with one byte of its RLE data zeroed so that pylibjpeg-rle panics, or None if none does."""
    pytest.importorskip("rle")
    from pydicom.pixels import get_decoder

    source = pydicom_file("MR_small_RLE.dcm")
    raw = source.read_bytes()
    start = pydicom.dcmread(source)["PixelData"].file_tell
    decoder = get_decoder(RLELossless)
    for position in range(start + 16, start + 216):  # past the item tag and length
        data = bytearray(raw)
        data[position] = 0
        ds = pydicom.dcmread(io.BytesIO(bytes(data)))
        try:
            decoder.as_array(ds, decoding_plugin="pylibjpeg")
        except Exception:
            continue
        except BaseException as exc:  # noqa: BLE001 - looking for pyo3's PanicException
            if type(exc).__name__ == "PanicException":
                path = tmp_path / "panic.dcm"
                path.write_bytes(bytes(data))
                return path
            raise
    return None


@pytest.mark.parametrize("timeout", [None, 30])
def test_a_rust_panic_in_the_rle_decoder_is_an_image_read_error(tmp_path, timeout):
    path = _rle_panic_file(tmp_path)  # this escaped ``except Exception`` and ended the run
    if path is None:
        pytest.skip("no byte found that makes this pylibjpeg-rle panic")
    err = expect_error(path, "corrupt DICOM pixel data", timeout=timeout)  # refused before any decoder runs
    assert "RLE segment" in str(err) and "PanicException" not in str(err)
    # Under warn the decoders are tried: the panic is caught, and pydicom's own RLE decoder refused it too.
    err = expect_error(path, "corrupt DICOM pixel data", timeout=timeout, on_corrupt="warn")
    assert "pylibjpeg: PanicException" in str(err)


class FakePanic(BaseException):
    """Like pyo3's PanicException: a BaseException, missed by ``except Exception``."""


@pytest.mark.parametrize("timeout", [None, 10])
def test_any_base_exception_from_a_reader_becomes_an_image_read_error(tmp_path, monkeypatch, timeout):
    path = save(dicom_dataset(np.zeros((4, 4), np.uint16)), tmp_path / "a.dcm")

    def panic(*args, **kwargs):
        raise FakePanic("index out of bounds: the len is 8192 but the index is 8192")

    stub_read(monkeypatch, "dicom", panic)
    err = expect_error(path, "FakePanic: index out of bounds", timeout=timeout)
    assert err.path == os.fspath(path)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 8.00 GiB for an array")

    stub_read(monkeypatch, "dicom", out_of_memory)
    expect_error(path, "not enough memory to read the image", timeout=timeout)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    stub_read(monkeypatch, "dicom", interrupted)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C still stops the run
        read_image(path, timeout=timeout)


def test_a_decoder_panic_inside_pydicom_falls_through_to_the_next_plugin_or_an_error(tmp_path, monkeypatch):
    path = save(dicom_dataset(np.zeros((4, 4), np.uint16)), tmp_path / "a.dcm")
    real = dicom_decode.get_decoder

    class PanickingDecoder:
        def __init__(self, ts):
            self._real = real(ts)

        def __getattr__(self, name):
            return getattr(self._real, name)

        def as_array(self, *args, **kwargs):
            raise FakePanic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(dicom_decode, "get_decoder", PanickingDecoder)
    expect_error(path, "FakePanic")


_GDCM_ABORTS = [  # pydicom's GDCM plugin throws an uncaught C++ exception: std::terminate, SIGABRT
    ("SC_rgb_jpeg_gdcm.dcm", "BitsStored", 7),  # gdcmImageCodec.cxx: BitsAllocated == BitsStored
    ("SC_rgb_jpeg_dcmtk.dcm", "BitsAllocated", 32),  # gdcmJPEGCodec.cxx: "Internal"
    ("MR_small_RLE.dcm", "BitsAllocated", 64),  # gdcmRLECodec.cxx (GDCM's own reader, the old fallback)
]


def test_headers_that_make_gdcm_abort_do_not_kill_the_process(tmp_path):
    paths = []
    for name, keyword, value in _GDCM_ABORTS:
        ds = pydicom.dcmread(pydicom_file(name))
        setattr(ds, keyword, value)
        paths.append(os.fspath(tmp_path / f"{keyword}-{name}"))
        ds.save_as(paths[-1])
    # In a child process: an abort must fail this test, not end the test session.
    code = (
        "import sys\nfrom medxai.io import read_image, ImageReadError\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        read_image(p)\n        print('image', p)\n"
        "    except ImageReadError as e:\n        assert p in str(e), e\n        print('error', p)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == len(paths)


def test_gdcm_runs_apart_a_crash_or_a_hang_there_is_an_error(monkeypatch):
    pytest.importorskip("gdcm")
    path = pydicom_file("JPEG-lossy.dcm")  # only GDCM decodes it: read_image goes to the fallback
    monkeypatch.setattr(dicom_decode, "_GDCM_CHILD", "import os\nos.abort()")
    expect_error(path, "gdcm: crashed (SIGABRT)")
    monkeypatch.setattr(dicom_decode, "_GDCM_CHILD", "import time\ntime.sleep(60)")
    with pytest.raises(ImageReadError, match=r"gdcm: took longer than 0.5 s \(runtime.read_timeout\); stopped"):
        read_dicom(path, timeout=0.5)  # the child is killed: "stopped", not its 60 s sleep


# ----------------------------------------------------------------- size limits


def _huge_rows_dicom(path: Path) -> Path:
    ds = dicom_dataset(np.zeros((4, 4), np.uint16))
    ds.Rows = ds.Columns = 65535
    return save(ds, path)


def test_a_dicom_declaring_65535_squared_is_refused_before_allocating(tmp_path):
    path = _huge_rows_dicom(tmp_path / "huge.dcm")
    expect_error(
        path, f"image too large: 65535 x 65535 = 4294836225 pixels, over data.max_pixels = {MAX}: ", max_pixels=MAX
    )
    assert peak_bytes(lambda: read_image(path, max_pixels=MAX)) < 10 * MIB


def test_a_compressed_dicom_declaring_more_than_it_holds_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    ds.Rows = ds.Columns = 20000  # the RLE decoders would allocate 800 MB before failing
    path = tmp_path / "rle.dcm"
    ds.save_as(path)
    expect_error(path, "image too large: 20000 x 20000 = 400000000 pixels", max_pixels=MAX)
    assert peak_bytes(lambda: read_image(path, max_pixels=MAX)) < 10 * MIB


def _codestream_bomb(tmp_path: Path, name: str) -> Path:
    """A DICOM file whose first codestream's own header (SOFn/SOF55/SIZ) declares 40000 x 40000."""
    ds = pydicom.dcmread(pydicom_file(name))
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    codestream = bytearray(frames[0])
    at = codestream.find(b"\xff\x51")
    if at >= 0 and ds.file_meta.TransferSyntaxUID.name.startswith("JPEG 2000"):
        struct.pack_into(">II", codestream, at + 6, 40000, 40000)  # SIZ: Xsiz, Ysiz
    else:
        at = min(
            i for i in (codestream.find(m) for m in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc3", b"\xff\xf7")) if i >= 0
        )
        struct.pack_into(">HH", codestream, at + 5, 40000, 40000)  # SOFn: Y, X
    ds.PixelData = encapsulate([bytes(codestream), *frames[1:]])
    path = tmp_path / f"bomb-{name}"
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    "name", ["SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm"]
)
def test_a_codestream_declaring_a_larger_image_than_the_header_is_refused(tmp_path, name):
    # Without the check: 18 GB and 50 s (JPEG), 9 GB (J2K), a SIGABRT in GDCM (JPEG-LS), 4 GB (JPEG extended).
    path = _codestream_bomb(tmp_path, name)
    expect_error(path, "the compressed DICOM pixel data declares a larger image than the header")
    assert peak_bytes(lambda: read_image(path)) < 10 * MIB  # even with no max_pixels


def test_malformed_encapsulation_is_refused_before_the_gdcm_fallback(tmp_path):
    raw = bytearray(pydicom_file("JPEG2000.dcm").read_bytes())
    at = pydicom.dcmread(pydicom_file("JPEG2000.dcm"))["PixelData"].file_tell
    raw[at + 4 : at + 8] = struct.pack("<I", 5)  # a Basic Offset Table length that is not a multiple of 4
    path = tmp_path / "bot.dcm"
    path.write_bytes(bytes(raw))
    if importlib.util.find_spec("gdcm") is not None:  # GDCM spent 2-8 s and 4 GB on this file: it must not run
        dicom_decode._GDCM_CHILD, saved = "import os\nos.abort()", dicom_decode._GDCM_CHILD
        try:
            expect_error(path, "malformed encapsulated pixel data")  # not "gdcm: crashed"
        finally:
            dicom_decode._GDCM_CHILD = saved
    expect_error(path, "malformed encapsulated pixel data")


def _png_rows(path: Path, width: int, height: int) -> Path:
    """An 8-bit grey PNG of zeros, compressed row by row: the image is never held in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_a_png_bomb_is_refused_by_max_pixels_without_decoding(tmp_path):
    path = _png_rows(tmp_path / "bomb.png", 13000, 13000)
    assert path.stat().st_size < 400_000  # 164 KB in the issue
    err = expect_error(path, max_pixels=MAX)
    assert str(err) == f"image too large: 13000 x 13000 = 169000000 pixels, over data.max_pixels = {MAX}: {path}"
    assert peak_bytes(lambda: read_image(path, max_pixels=MAX)) < 10 * MIB


def test_pillows_decompression_bomb_limit_stays_and_is_an_image_read_error(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    path = _png_rows(tmp_path / "bigger.png", 20000, 10000)  # 2e8 > 2 * MAX_IMAGE_PIXELS
    expect_error(path, "Pillow's decompression-bomb limit")  # no max_pixels: Pillow's own limit
    assert Image.MAX_IMAGE_PIXELS == limit  # never disabled


def test_a_small_png_is_read_under_max_pixels(tmp_path):
    path = _png_rows(tmp_path / "ok.png", 64, 32)
    image = read_image(path, max_pixels=64 * 32)
    assert image.array.shape == (32, 64, 1)
    expect_error(path, "image too large: 32 x 64 = 2048 pixels, over data.max_pixels = 2047", max_pixels=2047)


def test_rgb_and_tiff_sizes_count_channels_and_pages(tmp_path):
    import tifffile

    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(rgb)
    expect_error(rgb, "image too large: 10 x 20 x 3 channels = 600 values", max_pixels=599)
    assert read_image(rgb, max_pixels=600).array.shape == (10, 20, 3)
    tiff = tmp_path / "pages.tif"
    tifffile.imwrite(tiff, np.zeros((5, 10, 20), np.uint16))
    expect_error(tiff, "image too large: 5 x 10 x 20 = 1000 pixels", max_pixels=999)
    assert read_image(tiff, max_pixels=1000).array.shape == (5, 10, 20, 1)


def test_an_npy_header_declaring_a_huge_shape(tmp_path):
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(16))
    expect_error(path, "image too large: 100000 x 100000 = 10000000000 pixels", max_pixels=MAX)
    expect_error(path, "truncated NPY file")  # no limit: the header's promise is checked against the file
    assert peak_bytes(lambda: read_image(path)) < 10 * MIB


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_a_nifti_header_declaring_a_huge_shape(tmp_path, name):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 300))
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    raw = header.binaryblock + bytes(4) + bytes(1024)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    expect_error(path, "image too large: 30000 x 30000 x 300 = 270000000000 pixels", max_pixels=MAX)
    expect_error(path, "truncated NIfTI file")
    assert peak_bytes(lambda: read_image(path)) < 10 * MIB


def test_a_gzip_bomb_named_nii_gz_is_not_inflated_past_its_header(tmp_path):
    # A valid 64 x 64 image followed by 200 MB of zeros the header does not mention.
    image = nib.Nifti1Image(np.ones((64, 64), np.float32), np.eye(4))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = packer.compress(image.to_bytes()) + b"".join(packer.compress(bytes(MIB)) for _ in range(200))
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(body + packer.flush())
    assert path.stat().st_size < 1 * MIB
    peak = peak_bytes(lambda: read_image(path))
    assert read_image(path).array.shape == (64, 64, 1)
    assert peak < 20 * MIB


def test_a_deflated_dicom_that_inflates_past_the_limit_is_refused(tmp_path):
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    out.write(bytes(128) + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out.write(b"".join(packer.compress(bytes(MIB)) for _ in range(80)) + packer.flush())
    path = tmp_path / "deflated.dcm"
    path.write_bytes(out.getvalue())
    # max_pixels = 1: 8 bytes of pixels plus 64 MiB of header room; it inflates to 80 MiB
    expect_error(path, "deflated DICOM data set too large", max_pixels=1)
    assert peak_bytes(lambda: read_image(path, max_pixels=1)) < 40 * MIB


def test_a_dicom_file_larger_than_max_pixels_allows_is_refused_unread(tmp_path):
    path = tmp_path / "sparse.dcm"
    with open(path, "wb") as f:
        f.write(bytes(128) + b"DICM")
        f.truncate(70 * MIB)  # sparse: takes no disk
    expect_error(path, "DICOM file too large", max_pixels=1)


def test_a_series_is_refused_by_the_sum_of_its_files(tmp_path):
    dicom_series(tmp_path / "series", np.zeros((3, 8, 8)))
    message = "image too large: 3 files x 8 x 8 = 192 pixels, over data.max_pixels = 191"
    expect_error(tmp_path / "series", message, max_pixels=191)
    assert read_image(tmp_path / "series", max_pixels=192).array.shape == (3, 8, 8, 1)


def test_check_declared_size_message():
    with pytest.raises(ImageReadError, match=r"^image too large: 2 x 3 = 6 pixels, over data.max_pixels = 5: f.png$"):
        check_declared_size((2, 3), "f.png", 5)
    assert check_declared_size((2, 3), "f.png", None) == 6
    assert check_declared_size((1, 2, 3), "f.png", 6, channels=1) == 6


# ---------------------------------------------------------------- special files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_dcm_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.dcm"
    os.mkfifo(fifo)
    expect_error(fifo, "not a regular file", timeout=5)  # refused unread; the timeout only guards the test itself
    assert "FIFO" in str(expect_error(fifo))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_series_folder_with_a_fifo_reads_the_series(tmp_path):
    folder = tmp_path / "series"
    dicom_series(folder, np.zeros((3, 8, 8)))
    os.mkfifo(folder / "zz.dcm")
    image = read_image(folder, timeout=10)
    assert image.array.shape == (3, 8, 8, 1)
    assert not any("zz.dcm" in f for f in image.meta["source_files"])


def test_a_folder_named_like_an_image(tmp_path):
    (tmp_path / "y.png").mkdir()
    expect_error(tmp_path / "y.png", "the folder holds no DICOM image files")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_symlink_loop(tmp_path):
    os.symlink(tmp_path / "b.dcm", tmp_path / "a.dcm")
    os.symlink(tmp_path / "a.dcm", tmp_path / "b.dcm")
    expect_error(tmp_path / "a.dcm", "cannot open file")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_a_file_without_read_permission(tmp_path):
    path = save(dicom_dataset(np.zeros((4, 4), np.uint16)), tmp_path / "locked.dcm")
    path.chmod(0)
    try:
        expect_error(path, "cannot open file")
    finally:
        path.chmod(0o644)


def test_an_empty_file(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    expect_error(tmp_path / "empty.dcm", "empty file")


def test_a_dangling_symlink_is_not_found(tmp_path):
    os.symlink(tmp_path / "nowhere.png", tmp_path / "link.png")
    expect_error(tmp_path / "link.png", "file not found")


# ------------------------------------------------------------------ time limit


def test_a_read_over_the_time_limit_is_an_error_in_time(tmp_path, monkeypatch):
    path = save(dicom_dataset(np.zeros((4, 4), np.uint16)), tmp_path / "slow.dcm")

    def slow(*args, **kwargs):
        time.sleep(6)
        raise AssertionError("never seen: the read was abandoned")

    stub_read(monkeypatch, "dicom", slow)
    expect_error(path, "reading took longer than 0.3 s (runtime.read_timeout)", timeout=0.3)
    assert abandoned_reads() >= 1  # returned while the reader still sleeps: it was abandoned, not awaited
    assert abandoned_reads_end()  # the abandoned read finishes in the background


def test_abandoned_reads_never_outnumber_the_cap_and_later_images_are_refused_naming_them(tmp_path, monkeypatch):
    reader = StuckReader(READERS["png"].read)
    stub_read(monkeypatch, "png", reader)
    paths = [_png_rows(tmp_path / f"slow{k}.png", 8, 8) for k in range(5)]
    try:
        messages = [str(expect_error(path, timeout=0.2, max_abandoned=2)) for path in paths]
        assert reader.most == 2 and abandoned_reads() == 2  # never more than the cap, though 5 were asked
        assert all("reading took longer than 0.2 s (runtime.read_timeout)" in m for m in messages[:2])
        for message in messages[2:]:  # refused unread, each naming its file (expect_error) and the setting
            assert "not read: 2 earlier read(s) still run past runtime.read_timeout" in message, message
            assert "runtime.max_abandoned_reads is 2" in message, message
        assert "none ended within 2 s" in messages[2]  # the first waited ten times the limit...
        assert all("none has ended since an earlier image waited" in m for m in messages[3:])  # ...the next not at all
    finally:
        reader.release()
    assert abandoned_reads_end()  # the released reads end in the background
    assert read_image(paths[0], timeout=30, max_abandoned=2).array.shape == (8, 8, 1)  # room again


def test_a_read_waits_for_an_abandoned_read_that_ends_and_is_then_read(tmp_path, monkeypatch):
    reader = StuckReader(READERS["png"].read)
    stub_read(monkeypatch, "png", reader)
    slow, fast = _png_rows(tmp_path / "slow.png", 8, 8), _png_rows(tmp_path / "fast.png", 4, 4)
    expect_error(slow, "reading took longer than 0.5 s", timeout=0.5, max_abandoned=1)
    timer = threading.Timer(0.2, reader.release)  # the abandoned read ends while the next one waits (up to 5 s)
    timer.start()
    try:
        assert read_image(fast, timeout=0.5, max_abandoned=1).array.shape == (4, 4, 1)
    finally:
        reader.release()
        timer.cancel()


def test_stop_waiting_wakes_a_read_waiting_for_room_so_a_stopping_program_can_exit(tmp_path, monkeypatch):
    reader = StuckReader(READERS["png"].read)
    stub_read(monkeypatch, "png", reader)
    slow, other = _png_rows(tmp_path / "slow.png", 8, 8), _png_rows(tmp_path / "other.png", 4, 4)
    expect_error(slow, "reading took longer than 0.2 s", timeout=0.2, max_abandoned=1)
    caught: list[BaseException] = []

    def wait_for_room():  # would wait 10 x 5 s for the stuck read
        try:
            read_image(other, timeout=5, max_abandoned=1)
        except ImageReadError as err:
            caught.append(err)

    waiter = threading.Thread(target=wait_for_room)
    waiter.start()
    try:
        deadline = time.monotonic() + 30  # a hang guard, far below the 50 s it would wait
        while waiter.is_alive() and time.monotonic() < deadline:
            stop_waiting()  # again until it has begun to wait and gives up
            waiter.join(0.1)
        assert not waiter.is_alive()
    finally:
        reader.release()
    assert caught and f"not read: the program is stopping: {other}" in str(caught[0])
    assert abandoned_reads_end()


def test_a_read_within_the_time_limit_returns_the_image(tmp_path):
    path = save(dicom_dataset(np.arange(16, dtype=np.uint16).reshape(4, 4)), tmp_path / "ok.dcm")
    image = read_image(path, timeout=30, max_pixels=16)
    assert image.array.shape == (4, 4, 1) and image.meta["warnings"] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": math.nan},
        {"max_pixels": 0},
        {"max_pixels": 1.5},
        {"max_abandoned": 0},
    ],
)
def test_bad_limits_are_the_callers_bug(tmp_path, bad):
    with pytest.raises(ValueError):
        read_image(tmp_path / "any.png", **bad)


def test_convert_failure_keeps_image_read_errors():
    err = ImageReadError("x: f", "f")
    assert convert_failure(err, "f") is err
    assert "not enough memory" in str(convert_failure(MemoryError(), "f"))


# ------------------------------------------------------------ suspicious headers


def _ct(tmp_path: Path, name: str = "ct.dcm", pixels: np.ndarray | None = None, **tags) -> Path:
    """A small CT file with ``tags`` as written (pydicom warns of invalid DS values such as NaN: quiet)."""
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) if pixels is None else pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return save(dicom_dataset(pixels, **tags), tmp_path / name)


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({"RescaleSlope": "0", "RescaleIntercept": "-1024"}, "invalid DICOM RescaleSlope 0"),
        ({"RescaleSlope": "NaN", "RescaleIntercept": "0"}, "invalid DICOM RescaleSlope NaN"),
        ({"RescaleSlope": "1", "RescaleIntercept": "inf"}, "invalid DICOM RescaleIntercept inf"),
        ({"RescaleSlope": "0"}, "invalid DICOM RescaleSlope 0"),  # without an intercept too
        ({"RescaleSlope": "1e300", "RescaleIntercept": "0"}, "beyond float32's range"),
    ],
)
def test_an_unusable_rescale_is_refused(tmp_path, tags, match):
    expect_error(_ct(tmp_path, **tags), match)


def test_a_zero_slope_in_the_functional_groups_is_refused(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = dicom_dataset(np.zeros((2, 4, 4), np.uint16), frames=2)
    item, transform = Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = "0", "5"
    item.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([item])
    expect_error(save(ds, tmp_path / "enhanced.dcm"), "invalid DICOM RescaleSlope 0")


def test_a_tiny_slope_is_used_with_warnings(tmp_path):
    image = read_image(_ct(tmp_path, RescaleSlope="1e-320", RescaleIntercept="0"))
    assert any(w.startswith("RescaleSlope 1e-320 is implausibly small") for w in image.meta["warnings"])
    assert "the image is constant (every pixel is 0)" in image.meta["warnings"]
    assert np.isfinite(image.array).all()


@pytest.mark.parametrize(
    ("center", "width", "function", "warning"),
    [
        ("40", "-1", None, "WindowWidth -1 is invalid; no window from the file"),
        ("40", "NaN", None, "WindowWidth nan is invalid; no window from the file"),
        ("40", "0", None, "WindowWidth 0 is invalid; no window from the file"),
        ("40", "1e-300", None, "WindowWidth 1e-300 is under 1, the least a LINEAR window may have"),
        ("40", "0.5", "LINEAR", "WindowWidth 0.5 is under 1, the least a LINEAR window may have"),
        ("40", "1e-300", "LINEAR_EXACT", "WindowWidth 1e-300 is too small to use"),
        ("NaN", "400", None, "WindowCenter nan is invalid; no window from the file"),
    ],
)
def test_an_invalid_window_is_dropped_with_a_warning(tmp_path, center, width, function, warning):
    tags = {"WindowCenter": center, "WindowWidth": width}
    if function:
        tags["VOILUTFunction"] = function
    image = read_image(_ct(tmp_path, **tags))
    assert image.window is None
    assert any(w.startswith(warning) for w in image.meta["warnings"]), image.meta["warnings"]


def test_a_small_linear_exact_window_is_kept(tmp_path):
    image = read_image(_ct(tmp_path, WindowCenter="0.5", WindowWidth="0.25", VOILUTFunction="LINEAR_EXACT"))
    assert image.window == (0.5, 0.25) and image.meta["warnings"] == []


def test_a_constant_image_is_reported(tmp_path):
    image = read_image(_ct(tmp_path, pixels=np.full((8, 8), 7, np.uint16), RescaleSlope="2", RescaleIntercept="1"))
    assert image.meta["warnings"] == ["the image is constant (every pixel is 15)"]
    assert image.meta["value_range"] == (15.0, 15.0)
    np.save(tmp_path / "zeros.npy", np.zeros((4, 4), np.float32))
    assert read_image(tmp_path / "zeros.npy").meta["warnings"] == ["the image is constant (every pixel is 0)"]


def test_series_warnings_are_merged(tmp_path):
    folder = tmp_path / "series"
    files = dicom_series(folder, np.zeros((3, 8, 8)) + np.arange(3)[:, None, None])
    ds = pydicom.dcmread(files[1])
    ds.WindowWidth = "-1"
    ds.save_as(files[1])
    image = read_image(folder)
    assert image.meta["warnings"] == [
        f"WindowWidth -1 is invalid; no window from the file (in 1 of 3 files, e.g. {files[1].name})"
    ]
