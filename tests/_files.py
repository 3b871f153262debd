"""Helpers that write real image files (DICOM via pydicom, NIfTI via nibabel) for the io tests."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

from medxai.io.readers import READERS

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def dicom_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    frames: int | None = None,
    sop_class: str = CTImageStorage,
    bits_stored: int | None = None,
    **tags,
) -> Dataset:
    """A minimal valid image dataset holding ``pixels`` uncompressed.

    ``pixels``: (H, W) or (H, W, 3), or with a leading frame axis when
    ``frames`` is given; uint8/uint16/int16.
    """
    pixels = np.ascontiguousarray(pixels)
    colour = pixels.ndim == (4 if frames else 3)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = tags.pop("Modality", "CT")
    spatial = pixels.shape[1:3] if frames else pixels.shape[:2]
    ds.Rows, ds.Columns = int(spatial[0]), int(spatial[1])
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if frames:
        ds.NumberOfFrames = frames
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def jpeg_baseline_dicom(path: Path, rgb: np.ndarray) -> Path:
    """An RGB image stored as JPEG baseline (YBR_FULL_422) made by Pillow, encapsulated by hand.

    pydicom has no JPEG baseline encoder; the codestream comes from Pillow.
    """
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    ds = dicom_dataset(rgb, photometric="YBR_FULL_422", sop_class=SECONDARY_CAPTURE, Modality="OT")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    return save(ds, path)


def ramp(shape: tuple[int, ...], dtype=np.uint16, step: int = 1) -> np.ndarray:
    """Values 0, step, 2*step... in C order (wrapping round for small integer types)."""
    values = np.arange(int(np.prod(shape)), dtype=np.int64) * step
    if np.issubdtype(dtype, np.integer):
        values %= int(np.iinfo(dtype).max) + 1
    return values.reshape(shape).astype(dtype)


def rotation(degrees_x: float, degrees_y: float, degrees_z: float) -> np.ndarray:
    """A 3x3 rotation matrix (x, then y, then z, extrinsic)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", [degrees_x, degrees_y, degrees_z], degrees=True).as_matrix()


def dicom_series(
    folder: Path,
    volume: np.ndarray,
    *,
    orientation: np.ndarray | None = None,
    origin: tuple[float, float, float] = (-20.0, 15.0, 40.0),
    pixel_spacing: tuple[float, float] = (0.8, 0.6),
    slice_step: float = 2.5,
    order: list[int] | None = None,
    slopes: list[float] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
) -> list[Path]:
    """Writes ``volume`` (slices, rows, cols) of HU as one CT series, a file per slice (LPS+ geometry).

    Slice k sits at ``origin + k * slice_step * normal`` where the normal is the
    cross product of the two ``orientation`` rows (default: axial). Files are
    named in ``order`` (a permutation: file i holds slice order[i]) so the names
    say nothing of the geometry. ``slopes`` gives each slice its own RescaleSlope.
    Returns the files in slice order.
    """
    volume = np.asarray(volume, dtype=np.float64)
    n = volume.shape[0]
    iop = np.asarray([[1, 0, 0], [0, 1, 0]], dtype=np.float64) if orientation is None else np.asarray(orientation)
    normal = np.cross(iop[0], iop[1])
    order = list(range(n)) if order is None else order
    slopes = [1.0] * n if slopes is None else slopes
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[int, Path] = {}
    for name_index, k in enumerate(order):
        stored = np.rint((volume[k] + 1024.0) / slopes[k]).astype(np.uint16)
        ds = dicom_dataset(
            stored,
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series_uid,
            FrameOfReferenceUID=frame_uid,
            PatientID="SERIES-TEST",
            PatientName="Series^Test",
            StudyID="1",
            SeriesNumber=3,
            InstanceNumber=k + 1,
            ImageOrientationPatient=[float(v) for v in iop.ravel()],
            ImagePositionPatient=[float(v) for v in np.asarray(origin) + k * slice_step * normal],
            PixelSpacing=list(pixel_spacing),
            SliceThickness=7.0,  # deliberately not the step: the spacing must come from the positions
            RescaleSlope=slopes[k],
            RescaleIntercept=-1024.0,
            WindowCenter=40,
            WindowWidth=400,
        )
        paths[k] = save(ds, folder / f"im{name_index:03d}.dcm")
    return [paths[k] for k in range(n)]


def simpleitk_ras_affine(folder: Path) -> np.ndarray:
    """SimpleITK's geometry of the DICOM series in ``folder`` (an independent reader) as a NIfTI-order RAS+ affine.

    Skips the calling test when SimpleITK is not installed.
    """
    import os

    import pytest

    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(os.fspath(folder)))
    image = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def simpleitk_misplacement(source: Path, mapped: Path) -> float:
    """The largest distance (mm) SimpleITK puts between one pixel index of ``source`` and the same index of ``mapped``.

    Every corner of the grid and a pixel inside are compared; a 2D map of a
    source SimpleITK reads as ``(X, Y, 1)`` (a DICOM radiograph) is compared
    on that slice. Skips the calling test when SimpleITK is not installed.
    """
    import itertools
    import os

    import pytest

    sitk = pytest.importorskip("SimpleITK")
    a, b = sitk.ReadImage(os.fspath(source)), sitk.ReadImage(os.fspath(mapped))
    size = b.GetSize()
    assert a.GetSize()[: len(size)] == size and all(n == 1 for n in a.GetSize()[len(size) :]), (a.GetSize(), size)
    indices = [*itertools.product(*[(0, n - 1) for n in size]), tuple(n // 2 for n in size)]

    def point(image, index: tuple[int, ...]) -> np.ndarray:
        index = (*index, *(0,) * (image.GetDimension() - len(index)))
        p = image.TransformIndexToPhysicalPoint([int(i) for i in index])
        return np.array([*p, *(0.0,) * (3 - len(p))])

    return max(float(np.linalg.norm(point(a, i) - point(b, i))) for i in indices)


# ------------------------------------------------------------ hostile non-DICOM files


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR (valid CRC) declares ``width`` x ``height`` but holds one row of data."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(bytes(min(width, 4096) + 1))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    )
    return path


def jpeg_declaring(path: Path, height: int, width: int) -> Path:
    """A tiny greyscale JPEG whose SOF0 declares ``height`` x ``width`` (about 1 KB on disk)."""
    import struct

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buffer, "JPEG")
    raw = bytearray(buffer.getvalue())
    at = raw.find(b"\xff\xc0")
    struct.pack_into(">HH", raw, at + 5, height, width)
    path.write_bytes(bytes(raw))
    return path


def nifti_with_affine(path: Path, value: float, shape: tuple[int, ...] = (16, 16)) -> Path:
    """A float32 NIfTI-1 whose sform (code 1) has ``value`` (e.g. NaN or inf) in its first row.

    Written from the header bytes: nibabel refuses to build an image from such an affine.
    """
    import nibabel as nib

    data = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    image = nib.Nifti1Image(data, np.eye(4))
    image.set_sform(np.eye(4), code=1)
    header = image.header
    header["srow_x"] = np.array([value, 0, 0, 0], np.float32)
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + bytes(4) + data.tobytes(order="F"))
    return path


def _clean_non_dicom(folder: Path) -> list[Path]:
    """Small valid PNG (8/16-bit, RGB), JPEG, TIFF, NIfTI and NPY files to mutate."""
    import nibabel as nib
    import tifffile

    rng = np.random.default_rng(19)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "grey.png": lambda p: Image.fromarray((rng.random((24, 20)) * 255).astype(np.uint8)).save(p),
        "deep.png": lambda p: Image.fromarray((rng.random((20, 24)) * 65535).astype(np.uint16)).save(p),
        "rgb.png": lambda p: Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(p),
        "photo.jpg": lambda p: Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(p, "JPEG"),
        "pages.tif": lambda p: tifffile.imwrite(p, (rng.random((2, 16, 16)) * 4000).astype(np.uint16)),
        "ct.nii.gz": lambda p: nib.save(
            nib.Nifti1Image(rng.normal(0, 100, (16, 16, 4)).astype(np.int16), np.diag([0.8, 0.8, 2, 1])), p
        ),
        "slice.npy": lambda p: np.save(p, rng.random((16, 16)).astype(np.float32)),
    }  # fmt: skip
    for name, write in files.items():
        write(folder / name)
    return [folder / name for name in files]


def non_dicom_mutants(folder: Path, seed: int = 19) -> list[Path]:
    """A few dozen hostile PNG, JPEG, TIFF, NIfTI and NPY files: byte flips, truncations, lying headers, NaN affines.

    Deterministic for a ``seed``. Small on disk and none declares more than about 11000^2 pixels.
    """
    import random

    rng = random.Random(seed)
    written: list[Path] = []
    for source in _clean_non_dicom(folder / "clean"):
        raw = source.read_bytes()
        name = source.name.split(".", 1)
        for how in ("header", "body", "body", "truncate", "truncate"):
            data = bytearray(raw)
            if how == "header":
                for _ in range(rng.randint(1, 3)):
                    data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
            elif how == "body":
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data) // 4, len(data))] = rng.randrange(256)
            else:
                del data[rng.randrange(8, len(data)) :]
            written.append(folder / f"{name[0]}-{how}{len(written)}.{name[1]}")
            written[-1].write_bytes(bytes(data))
    written += [
        png_declaring(folder / "declares-11000.png", 11000, 11000),
        png_declaring(folder / "declares-65535.png", 65535, 65535),
        jpeg_declaring(folder / "declares-32x64800.jpg", 32, 64800),
        jpeg_declaring(folder / "declares-0.jpg", 0, 16),
        nifti_with_affine(folder / "nan-affine.nii", float("nan")),
        nifti_with_affine(folder / "inf-affine.nii", float("inf")),
        nifti_with_affine(folder / "nan-affine-3d.nii", float("nan"), (8, 8, 4)),
    ]
    npy = folder / "lies.npy"
    with open(npy, "wb") as handle:  # a header promising more than the file holds
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (64, 64)})
        handle.write(bytes(100))
    written.append(npy)
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "complex.npy", np.ones((8, 8), np.complex64))
    np.save(folder / "nan-values.npy", np.full((8, 8), np.nan, np.float32))
    written += [folder / "objects.npy", folder / "complex.npy", folder / "nan-values.npy"]
    return written


def stub_read(monkeypatch, kind: str, read) -> None:
    """For one test, ``read_image`` reads files of ``kind`` with ``read(path, *, max_pixels, timeout, on_corrupt)``."""
    monkeypatch.setitem(READERS, kind, dataclasses.replace(READERS[kind], read=read))


class StuckReader:
    """Wraps a reader: files whose name starts with ``slow`` block until :meth:`release`, like a decoder stuck on a
    hostile file; ``most`` is how many were stuck at once."""

    def __init__(self, real):
        self.real, self.released, self._lock = real, threading.Event(), threading.Lock()
        self.now = self.most = 0

    def __call__(self, path, *args, **kwargs):
        if not os.path.basename(os.fspath(path)).startswith("slow"):
            return self.real(path, *args, **kwargs)
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            assert self.released.wait(120), "never released"
            return self.real(path, *args, **kwargs)
        finally:
            with self._lock:
                self.now -= 1

    def release(self) -> None:
        self.released.set()


def abandoned_reads_end(seconds: float = 60) -> bool:
    """Wait for the reads abandoned past their time limit to end (a hang guard: at most ``seconds``)."""
    from medxai.io.limits import abandoned_reads

    deadline = time.monotonic() + seconds
    while abandoned_reads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return abandoned_reads() == 0


def rle_dicom(path: Path, pixels: np.ndarray, *, frames: int | None = None, **tags) -> Path:
    """``pixels`` (as :func:`dicom_dataset` takes them) written as RLE Lossless by pydicom's own encoder."""
    ds = dicom_dataset(pixels, frames=frames, **tags)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return save(ds, path)


def with_frames(source: Path, path: Path, frames: list[bytes]) -> Path:
    """``source`` with its encapsulated pixel data replaced by ``frames`` (one fragment each, no offset table)."""
    ds = pydicom.dcmread(source)
    ds.PixelData = encapsulate(frames, has_bot=False)
    return save(ds, path)


def frames_of(path: Path) -> list[bytes]:
    """The encapsulated frames of a DICOM file."""
    ds = pydicom.dcmread(path)
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))


def pydicom_file(name: str) -> Path:
    """One of pydicom's test files (installed with pydicom, never downloaded); the test is skipped without it."""
    import pytest
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom's test file {name} is not installed")
    return Path(path)


def issue25_file(path: Path) -> Path:
    """pydicom's ``MR_small_RLE.dcm`` with byte 7449 set to 211: its second RLE segment overruns (issue 25)."""
    data = bytearray(pydicom_file("MR_small_RLE.dcm").read_bytes())
    data[7449] = 211
    path.write_bytes(bytes(data))
    return path
