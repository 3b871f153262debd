"""The in-memory image every reader returns, and the one error every reader raises."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medxai.errors import CorruptPixelDataError, ImageReadError
from medxai.io.geometry import default_affine

__all__ = ["CorruptPixelDataError", "ImageReadError", "LoadedImage"]


def read_error(problem: str, path: str | os.PathLike, detail: str | None = None) -> ImageReadError:
    """Builds an :class:`ImageReadError` as ``"<problem>: <path> (<detail>)"``."""
    return ImageReadError(_message(problem, path, detail), path)


def corrupt_error(kind: str, path: str | os.PathLike, problems: Sequence[str]) -> CorruptPixelDataError:
    """Builds a :class:`CorruptPixelDataError` as ``"corrupt <kind> pixel data: <path> (<problem>; ...)"``."""
    return CorruptPixelDataError(_message(f"corrupt {kind} pixel data", path, "; ".join(problems)), path, problems)


def _message(problem: str, path: str | os.PathLike, detail: str | None) -> str:
    message = f"{problem}: {os.fspath(path)}"
    if detail:
        message += f" ({detail})"
    return message


def describe(exc: BaseException) -> str:
    """A short one-line description of a library exception, for messages."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class LoadedImage:
    """An image as read from disk, before any preprocessing.

    Attributes:
        array: float32, shape ``(*spatial, C)``: 2D ``(H, W, C)`` or 3D
            ``(D, H, W, C)``, ``C`` is 1 (grey) or 3 (RGB). Values are in the
            modality's units (e.g. Hounsfield units after the DICOM modality
            LUT), neither windowed nor inverted.
        source_path: the file it was read from.
        kind: the input format, a key of :data:`medxai.io.readers.READERS` (e.g. ``"dicom"``).
        window: ``(center, width)`` of the file's VOI LUT window, else None.
        invert: True when display must be inverted after windowing
            (DICOM MONOCHROME1, TIFF min-is-white).
        spacing: pixel/voxel spacing per spatial axis, in the same axis order
            as ``array``, when the file records it.
        affine: 4x4 RAS+ affine of the array's index (see
            :mod:`medxai.io.geometry`); when the reader knows no position it is
            :func:`~medxai.io.geometry.default_affine` of ``spacing`` (1 mm when
            unknown) and ``patient_geometry`` is False.
        patient_geometry: True when ``affine`` places the image in the patient
            (DICOM ImagePositionPatient/ImageOrientationPatient, NIfTI sform/qform).
        meta: small facts about the source, e.g. ``{"modality": "CT",
            "photometric": "MONOCHROME2", "frames": 1}``. From
            :func:`medxai.io.read_image` always ``"warnings"`` (a list of
            sentences for the user: a constant image, an invalid DICOM window
            that was dropped, a tiny RescaleSlope, a lying suffix...) and
            ``"value_range"`` (the array's ``(min, max)``, NaN when it holds NaN).
    """

    array: np.ndarray
    source_path: str
    kind: str
    window: tuple[float, float] | None = None
    invert: bool = False
    spacing: tuple[float, ...] | None = None
    meta: dict = field(default_factory=dict)
    affine: np.ndarray | None = None
    patient_geometry: bool = False

    def __post_init__(self) -> None:
        ndim = self.array.ndim - 1
        if self.affine is None:
            if ndim not in (2, 3):  # not an image medxai can use; the preprocessor says so
                return
            spacing = self.spacing if self.spacing is not None and len(self.spacing) == ndim else None
            self.affine = default_affine(spacing, ndim)
            self.patient_geometry = False
        else:
            self.affine = np.asarray(self.affine, dtype=np.float64)
            if self.affine.shape != (4, 4):
                raise ValueError(f"an affine is a 4x4 matrix, got shape {self.affine.shape}")

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The shape without the trailing channel axis."""
        return tuple(int(n) for n in self.array.shape[:-1])

    @property
    def channels(self) -> int:
        """The number of channels (last axis)."""
        return int(self.array.shape[-1])


def as_image_array(data: np.ndarray, path: str | os.PathLike, *, allow_3d: bool = True) -> np.ndarray:
    """Checks a ``(*spatial, C)`` array and returns it as contiguous float32.

    Raises:
        ImageReadError: empty, non-numeric, or not 2D/3D with 1 or 3 channels, or finite
            values that float32 cannot hold (e.g. 1e308 in a float64 file).
    """
    if data.dtype.kind not in "biuf":
        raise read_error("unsupported pixel data type", path, f"dtype {data.dtype}")
    if data.size == 0:
        raise read_error("image is empty", path, f"shape {data.shape}")
    spatial = data.ndim - 1
    if spatial not in ((2, 3) if allow_3d else (2,)) or data.shape[-1] not in (1, 3):
        raise read_error("unsupported image shape", path, f"shape {data.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(data, dtype=np.float32)
    if data.dtype.kind == "f" and data.dtype.itemsize > 4:
        overflowed = int(np.count_nonzero(np.isfinite(data) & ~np.isfinite(out)))
        if overflowed:
            raise read_error(
                f"{overflowed} value(s) beyond float32's range (finite in the file, {data.dtype}: "
                "the float32 cast overflows)",
                path,
                f"largest magnitude {float(np.nanmax(np.abs(data[np.isfinite(data)]))):.3g}",
            )
    return out
