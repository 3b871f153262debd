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
