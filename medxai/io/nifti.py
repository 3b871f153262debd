"""NIfTI-1/NIfTI-2 reader and writer (``.nii``, ``.nii.gz``) via nibabel."""

from __future__ import annotations

import gzip
import io
import math
import os
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy

from medxai.io.arrays import range_meta
from medxai.io.geometry import array_to_nifti_affine, nifti_to_array_affine
from medxai.io.image import ImageReadError, LoadedImage, as_image_array, describe, read_error
from medxai.io.limits import check_declared_size
from medxai.io.writers import atomic_write_bytes

__all__ = ["NiftiXforms", "is_nifti", "read_nifti", "nifti_version", "write_nifti"]

_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI2_HEADER_BYTES = 540
_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class NiftiXforms:
    """Where a NIfTI file puts its voxels, as its header says, in the file's own ``(X, Y, Z)`` order.

    A file may hold two transforms that disagree (common after a registration
    that updates only the sform), and readers pick differently: nibabel takes
    the sform, ITK may take the qform (SimpleITK does for sform code 2, qform
    code 1). So a map on the same grid carries both, with their codes.

    Attributes:
        sform: the 4x4 sform matrix (``srow_x/y/z``).
        sform_code: its code (0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5 template).
        qform: the 4x4 matrix of the quaternion, offsets and ``pixdim``.
        qform_code: its code.
        xyz_units: the spatial unit (nibabel's names: ``"mm"``, ``"micron"``, ``"meter"``, ``"unknown"``).
    """

    sform: np.ndarray
    sform_code: int
    qform: np.ndarray
    qform_code: int
    xyz_units: str = "unknown"

    @classmethod
    def of(cls, header: nib.Nifti1Header) -> NiftiXforms:
        """The transforms, codes and spatial unit of a NIfTI-1 or NIfTI-2 header."""
        return cls(
            sform=np.asarray(header.get_sform(), dtype=np.float64),
            sform_code=int(header["sform_code"]),
            qform=np.asarray(header.get_qform(), dtype=np.float64),
            qform_code=int(header["qform_code"]),
            xyz_units=str(header.get_xyzt_units()[0]),
        )


def nifti_version(head: bytes) -> int | None:
    """1 or 2 when ``head`` (uncompressed) starts a single-file NIfTI, else None."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        return 1
    if len(head) >= 8 and head[4:8] == b"n+2\x00":
        return 2
    return None


def is_nifti(head: bytes) -> bool:
    """True when ``head`` (uncompressed) starts a single-file NIfTI-1 or NIfTI-2 image."""
    return nifti_version(head) is not None


def read_nifti(path: str | os.PathLike, *, max_pixels: int | None = None) -> LoadedImage:
    """Reads a single-file NIfTI image, gzipped or not (decided by content).

    The data (scaled by ``scl_slope``/``scl_inter``) is transposed so the
    slowest axis comes first: nibabel's ``(X, Y, Z)`` becomes ``(Z, Y, X, 1)``;
    ``(X, Y)`` and ``(X, Y, 1)`` become ``(Y, X, 1)``. Spacing comes from the
    header's zooms, in the same order. No reorientation is done: the
    image's affine is nibabel's (sform, else qform) with its columns put in
    the same order (:func:`medxai.io.geometry.nifti_to_array_affine`);
    ``meta["nifti_xforms"]`` keeps both transforms and codes as the header has
    them (:class:`NiftiXforms`), for :func:`write_nifti`.
    ``meta["stored_range"]``/``meta["bit_depth"]``: the on-disk integer type's
    range through ``scl_slope``/``scl_inter`` (:func:`~medxai.io.arrays.range_meta`),
    None for float data.

    The header is read first: an image declaring more than ``max_pixels``
    voxels is refused, and no more than the header says is read or
    decompressed (a gzip bomb stops there).

    Args:
        path: the file.
        max_pixels: the most voxels the header may declare (``data.max_pixels``); None: no limit.

    Raises:
        ImageReadError: not NIfTI, corrupt, truncated, too large, or not a 2D/3D scalar image.
    """
    path = os.fspath(path)
    raw, version = _read_declared_bytes(path, max_pixels)
    try:
        klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
        img = klass.from_stream(io.BytesIO(raw))  # what from_bytes does, but from_bytes is typed for bytes only
        data = np.asarray(img.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in img.header.get_zooms())
        xforms = NiftiXforms.of(img.header)
        affine = np.asarray(img.affine, dtype=np.float64)
        proxy = img.dataobj
        if not isinstance(proxy, ArrayProxy):
            raise TypeError(f"expected the file's data as an ArrayProxy, got {type(proxy).__name__}")
        stored = range_meta(img.get_data_dtype(), slope=proxy.slope, intercept=proxy.inter)
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
    meta: dict[str, Any] = {
        "shape_xyz": tuple(int(n) for n in shape_xyz),
        "nifti_version": version,
        "xform_codes": (xforms.sform_code, xforms.qform_code),
        "nifti_xforms": xforms,
        **stored,
    }
    if not np.isfinite(affine).all():
        meta["warnings"] = ["the NIfTI affine (sform or qform) holds NaN or infinite values: no spacing or orientation"]
    return LoadedImage(
        array=array,
        source_path=path,
        kind="nifti",
        spacing=spacing,
        meta=meta,
        affine=nifti_to_array_affine(affine, array.ndim - 1),
        patient_geometry=xforms.sform_code > 0 or xforms.qform_code > 0,
    )


def _read_declared_bytes(path: str, max_pixels: int | None) -> tuple[bytearray, int]:
    """The header, extensions and data (no more) of a NIfTI file, decompressed, and its version.

    Raises:
        ImageReadError: not NIfTI, an invalid or too large shape, or fewer bytes than the header declares.
    """
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == _GZIP_MAGIC
        with (gzip.open if gzipped else open)(path, "rb") as f:
            head = f.read(_NIFTI2_HEADER_BYTES)
            version = nifti_version(head)
            if version is None:
                raise read_error("not a NIfTI file", path)
            header_class = nib.Nifti1Header if version == 1 else nib.Nifti2Header
            header = header_class.from_fileobj(io.BytesIO(head))
            shape = tuple(int(n) for n in header.get_data_shape())
            if any(n < 0 for n in shape):
                raise read_error("invalid NIfTI header", path, f"negative size in shape {shape}")
            check_declared_size(shape, path, max_pixels)
            needed = max(int(header.get_data_offset()) + math.prod(shape) * header.get_data_dtype().itemsize, len(head))
            size = os.fstat(f.fileno()).st_size
            if not gzipped and size < needed:
                raise read_error("truncated NIfTI file", path, f"its header declares {needed} bytes, it holds {size}")
            raw = bytearray(head)
            while len(raw) < needed and (chunk := f.read(min(needed - len(raw), _CHUNK))):
                raw += chunk  # in pieces: what a truncated gzip stream holds, not what its header claims
    except ImageReadError:
        raise
    except Exception as exc:
        raise read_error("cannot read NIfTI file", path, describe(exc)) from None
    if len(raw) < needed:
        raise read_error("truncated NIfTI file", path, f"its header declares {needed} bytes, it holds {len(raw)}")
    return raw, version


def write_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    shape_xyz: tuple[int, ...] | None = None,
    xform_code: int = 1,
    xforms: NiftiXforms | None = None,
    dtype: type[np.float32] | type[np.uint8] = np.float32,
    description: str = "medxai attribution map",
) -> None:
    """Writes a float32 map (or a uint8 mask) as NIfTI-1 (gzipped when ``path`` ends in ``.gz``), atomically.

    Args:
        path: the destination, ``.nii`` or ``.nii.gz``.
        array: the map in medxai's array order, ``(rows, cols)`` or ``(slices, rows, cols)``.
        affine: its array-order RAS+ affine (:mod:`medxai.io.geometry`); the file
            gets the NIfTI ``(X, Y, Z)`` form as both sform and qform.
        shape_xyz: the source file's own shape (e.g. ``(X, Y, Z, 1)``), to write the
            map with exactly that shape when it differs only by trailing singleton axes.
        xform_code: the sform/qform code (1: scanner coordinates, 2: aligned to another file).
        xforms: a NIfTI source's own transforms (``meta["nifti_xforms"]`` of
            :func:`read_nifti`) for a map on its grid: both matrices (the qform
            sets the zooms), both codes and the unit are written as they are,
            instead of ``affine`` and ``xform_code``, so that every reader
            places the map where it places the source.
        dtype: the stored type: ``np.float32`` (a map) or ``np.uint8`` (a 0/1 mask; anything but
            whole numbers from 0 to 255 is refused).
        description: the header's ``descrip`` (at most 80 bytes of ASCII).

    Raises:
        ValueError: not a 2D/3D array, or it or the affine is not finite; uint8 data not whole numbers in 0..255.
    """
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"a NIfTI map is float32 or uint8, got {dtype}")
    data = np.asarray(array, dtype=np.float32)
    if data.ndim not in (2, 3):
        raise ValueError(f"a NIfTI map needs 2 or 3 axes, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the map contains NaN or infinite values")
    if dtype is np.uint8:
        if data.size and (data.min() < 0 or data.max() > 255 or (data != np.rint(data)).any()):
            raise ValueError("uint8 NIfTI data must be whole numbers from 0 to 255")
        data = data.astype(np.uint8)
    if not np.isfinite(np.asarray(affine, dtype=np.float64)).all():
        raise ValueError(
            "the source's affine holds NaN or infinite values: a NIfTI map would have no place in the patient"
        )
    nifti_affine = array_to_nifti_affine(affine, data.ndim)
    xyz = data.T  # array order -> nibabel's (X, Y, Z)
    if (
        shape_xyz is not None
        and tuple(shape_xyz[: xyz.ndim]) == xyz.shape
        and all(n == 1 for n in shape_xyz[xyz.ndim :])
    ):
        xyz = xyz.reshape(tuple(shape_xyz))  # give back the source's trailing singleton axes
    image = nib.Nifti1Image(np.asfortranarray(xyz), nifti_affine)
    image.header.set_data_dtype(dtype)
    if xforms is None:
        image.set_sform(nifti_affine, code=xform_code)
        image.set_qform(nifti_affine, code=xform_code)
    else:
        image.set_qform(xforms.qform, code=xforms.qform_code)
        image.set_sform(xforms.sform, code=xforms.sform_code)
        image.header.set_xyzt_units(xyz=xforms.xyz_units)
    image.header["descrip"] = description.encode("ascii", "replace")[:80]
    raw = image.to_bytes()
    # Level 1: maps compress well enough at a fraction of the time of the default 9.
    atomic_write_bytes(path, gzip.compress(raw, compresslevel=1, mtime=0) if os.fspath(path).endswith(".gz") else raw)
