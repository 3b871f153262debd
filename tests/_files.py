"""Helpers that write real image files (DICOM via pydicom, NIfTI via nibabel) for the io tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

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
