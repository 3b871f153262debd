"""NIfTI-1/NIfTI-2 reader (``.nii``, ``.nii.gz``) via nibabel."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from medxai.io.image import LoadedImage, as_image_array, describe, read_error

__all__ = ["read_nifti", "nifti_version"]

_GZIP_MAGIC = b"\x1f\x8b"


def nifti_version(head: bytes) -> int | None:
    """1 or 2 when ``head`` (uncompressed) starts a single-file NIfTI, else None."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        return 1
    if len(head) >= 8 and head[4:8] == b"n+2\x00":
        return 2
    return None


def read_nifti(path: str | os.PathLike) -> LoadedImage:
    """Reads a single-file NIfTI image, gzipped or not (decided by content).

    The data (scaled by ``scl_slope``/``scl_inter``) is transposed so the
    slowest axis comes first: nibabel's ``(X, Y, Z)`` becomes ``(Z, Y, X, 1)``;
    ``(X, Y)`` and ``(X, Y, 1)`` become ``(Y, X, 1)``. Spacing comes from the
    header's zooms, in the same order. No reorientation is done.

    Raises:
        ImageReadError: not NIfTI, corrupt, or not a 2D/3D scalar image.
    """
    path = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except Exception as exc:
        raise read_error("cannot read NIfTI file", path, describe(exc)) from None
    version = nifti_version(raw[:552])
    if version is None:
        raise read_error("not a NIfTI file", path)
    try:
        klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
        img = klass.from_bytes(raw)
        data = np.asarray(img.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except Exception as exc:
        raise read_error("cannot decode NIfTI file", path, describe(exc)) from None
    shape_xyz = data.shape
    # Trailing singleton axes (e.g. a 4D file with one time point) carry nothing.
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise read_error("unsupported NIfTI shape (need a 2D or 3D scalar image)", path, f"shape {shape_xyz}")
    data = data.T[..., np.newaxis]  # (X, Y[, Z]) -> ([Z,] Y, X, 1)
    spacing = tuple(reversed(zooms[: data.ndim - 1])) if len(zooms) >= data.ndim - 1 else None
    array = as_image_array(data, path)
    meta = {"shape_xyz": tuple(int(n) for n in shape_xyz), "nifti_version": version}
    return LoadedImage(array=array, source_path=path, kind="nifti", spacing=spacing, meta=meta)
