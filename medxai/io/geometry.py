"""Where an image's pixels are in the patient: affines in medxai's array order.

medxai keeps every image as an array with the slowest axis first: 2D
``(rows, cols)``, 3D ``(slices, rows, cols)`` (for NIfTI input, the transpose
of nibabel's ``(X, Y, Z)``). Its **affine** is a 4x4 matrix taking an index in
that order, ``(a0, a1, a2, 1)``, to millimetres in RAS+ patient coordinates
(+x to the patient's right, +y anterior, +z superior), the convention of
NIfTI, nibabel and 3D Slicer. A 2D image's affine has a third column too (the
slice normal), so a single slice still sits in 3D space.

DICOM patient coordinates are LPS+ (+x to the patient's left, +y posterior,
+z superior); they become RAS+ by negating x and y, as nibabel and ITK do.
Orientation codes name, per axis, the direction the index increases
towards (nibabel's ``aff2axcodes``): a standard axial CT volume is ``"SPL"``
in medxai's order, ``"LPS"`` in the NIfTI file's ``(X, Y, Z)`` order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LPS_TO_RAS",
    "array_to_nifti_affine",
    "default_affine",
    "dicom_affine",
    "nifti_to_array_affine",
    "orientation_code",
    "voxel_spacing",
]

#: Multiplies DICOM LPS+ coordinates into RAS+ (and back: it is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _axis_order(ndim: int) -> list[int]:
    """The affine columns of the NIfTI ``(X, Y[, Z])`` axes in array order: the spatial axes reversed.

    For 2D the slice normal (column 2) stays third.
    """
    if ndim not in (2, 3):
        raise ValueError(f"an image has 2 or 3 spatial axes, got {ndim}")
    return [1, 0, 2, 3] if ndim == 2 else [2, 1, 0, 3]


def nifti_to_array_affine(affine: np.ndarray, ndim: int) -> np.ndarray:
    """The affine of a NIfTI file's ``(X, Y[, Z])`` data after it is transposed to array order."""
    return np.asarray(affine, dtype=np.float64)[:, _axis_order(ndim)]


def array_to_nifti_affine(affine: np.ndarray, ndim: int) -> np.ndarray:
    """The NIfTI ``(X, Y, Z)`` affine of an array-order affine (the inverse of :func:`nifti_to_array_affine`).

    Example:
        >>> a = nifti_to_array_affine(np.diag([0.5, 2.0, 1.0, 1.0]), 2)
        >>> array_to_nifti_affine(a, 2).diagonal().tolist()
        [0.5, 2.0, 1.0, 1.0]
    """
    return np.asarray(affine, dtype=np.float64)[:, _axis_order(ndim)]  # the permutation is its own inverse


def default_affine(spacing: Sequence[float] | None, ndim: int | None = None) -> np.ndarray:
    """The affine of an image that records no position (PNG, NPY, a radiograph): scaled axes, origin 0.

    It is the grid ITK (SimpleITK, ITK-SNAP, Slicer) gives such an image, in
    LPS+: identity direction, origin 0, so that a map written with it lands
    on the source pixel by pixel there too. Columns grow towards +x LPS (the
    patient's left), rows towards +y LPS (posterior), slices towards +z: the
    NIfTI form is ``diag(-sx, -sy, sz, 1)`` in RAS+. ``spacing`` is in array
    order; None means 1 mm.

    Example:
        >>> array_to_nifti_affine(default_affine((2.0, 0.5)), 2).diagonal().tolist()
        [-0.5, -2.0, 1.0, 1.0]

    Raises:
        ValueError: neither ``spacing`` nor ``ndim`` is given, or they disagree.
    """
    if spacing is None:
        if ndim is None:
            raise ValueError("default_affine needs the spacing or the number of axes")
        spacing = (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing)
    if ndim is not None and len(spacing) != ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for {ndim} axes")
    n = len(spacing)
    lps = np.diag([*reversed(spacing), *([1.0] * (3 - n)), 1.0])
    return array_to_nifti_affine(LPS_TO_RAS @ lps, n)


def dicom_affine(
    orientation: Sequence[float],
    position: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step: Sequence[float] | None = None,
) -> np.ndarray:
    """The RAS+ array-order affine of a DICOM slice or of a sorted stack of slices (PS3.3 C.7.6.2.1.1).

    Args:
        orientation: ImageOrientationPatient: the direction cosines of a row
            (the way the column index grows), then of a column (the way the
            row index grows), LPS+.
        position: ImagePositionPatient of the first slice's first pixel, LPS+ mm.
        pixel_spacing: PixelSpacing: the distance between rows, then between columns, mm.
        slice_step: for a stack, the LPS+ vector from one slice's position to the
            next (from the sorted positions); None for a single slice, whose third
            column is then the unit slice normal.

    Returns:
        A 4x4 matrix: for a slice it maps ``(row, col, 0, 1)``, for a stack
        ``(slice, row, col, 1)``, to RAS+ mm.

    Raises:
        ValueError: the orientation's two vectors are not unit length and orthogonal.
    """
    iop = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    along_row, along_col = iop[0], iop[1]
    if not (np.allclose(np.linalg.norm(iop, axis=1), 1.0, atol=1e-3) and abs(along_row @ along_col) < 1e-3):
        raise ValueError(f"ImageOrientationPatient {list(orientation)} is not two orthogonal unit vectors")
    normal = np.cross(along_row, along_col)
    row_step = along_col * float(pixel_spacing[0])  # the next row lies one row spacing down the column
    col_step = along_row * float(pixel_spacing[1])
    lps = np.eye(4)
    lps[:3, 3] = np.asarray(position, dtype=np.float64)
    if slice_step is None:
        lps[:3, 0], lps[:3, 1], lps[:3, 2] = row_step, col_step, normal
    else:
        lps[:3, 0], lps[:3, 1], lps[:3, 2] = np.asarray(slice_step, dtype=np.float64), row_step, col_step
    return LPS_TO_RAS @ lps


def voxel_spacing(affine: np.ndarray, ndim: int) -> tuple[float, ...]:
    """The length of each array axis's step (mm), in array order; NaN or inf where the affine is not finite."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :ndim], axis=0))


def orientation_code(affine: np.ndarray, ndim: int) -> str:
    """The RAS letters the array axes point towards, in array order (e.g. ``"SPL"``, ``"PL"``).

    Each axis gets the letter of the patient direction closest to its step
    (nibabel's ``aff2axcodes``); ``"?"`` for an axis without a direction (a zero
    column). Empty when the affine holds NaN or inf or cannot be decomposed: a
    hostile header names no direction, and must not raise.

    Example:
        >>> orientation_code(dicom_affine([1, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1], [0, 0, 2]), 3)
        'SPL'
        >>> orientation_code(np.full((4, 4), np.nan), 3)
        ''
    """
    from nibabel.orientations import aff2axcodes  # deferred: nibabel is only needed for this

    matrix = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(matrix).all():
        return ""
    try:
        codes = aff2axcodes(matrix)
    except (np.linalg.LinAlgError, ValueError):
        return ""
    return "".join(c or "?" for c in codes[:ndim])
