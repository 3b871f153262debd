"""DICOM geometry: where a frame lies in the patient (PS3.3 C.7.6.2), its spacing, and the image's RAS+ affine.

Attributes are read from the data set itself or from an enhanced multi-frame
object's functional groups (per-frame, then shared; PS3.3 C.7.6.16).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from pydicom.dataset import Dataset

from medxai.io.geometry import dicom_affine

__all__ = [
    "FrameGeometry", "frame_geometry", "frames_affine", "functional_group", "orientation_letters", "pixel_spacing",
    "source_orientation",
]  # fmt: skip


def functional_group(ds: Dataset, sequence: str, frame: int) -> Dataset | None:
    """The item of ``sequence`` for ``frame`` in an enhanced multi-frame object (PS3.3 C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame) and per_frame[frame].get(sequence):
        return per_frame[frame].get(sequence)[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(sequence):
        return shared[0].get(sequence)[0]
    return None


def pixel_spacing(ds: Dataset, frames: int) -> tuple[float, ...] | None:
    """Row/column spacing (PixelSpacing, else ImagerPixelSpacing), plus slice spacing for volumes."""
    try:
        measures = functional_group(ds, "PixelMeasuresSequence", 0)
        sources = [s for s in (ds, measures) if s is not None]
        in_plane = next((s.get(k) for k in ("PixelSpacing", "ImagerPixelSpacing") for s in sources if s.get(k)), None)
        if not in_plane or len(in_plane) < 2:
            return None
        rows, cols = float(in_plane[0]), float(in_plane[1])
        if frames == 1:
            return (rows, cols)
        between = next(
            (s.get(k) for k in ("SpacingBetweenSlices", "SliceThickness") for s in sources if s.get(k)), None
        )
        return None if between is None else (abs(float(between)), rows, cols)
    except (TypeError, ValueError, AttributeError):
        return None


_PLACEMENT = {  # attribute: (its functional group, its length)
    "ImageOrientationPatient": ("PlaneOrientationSequence", 6),
    "ImagePositionPatient": ("PlanePositionSequence", 3),
    "PixelSpacing": ("PixelMeasuresSequence", 2),
}


class FrameGeometry(NamedTuple):
    """Where a frame lies: each attribute None when absent or malformed (wrong length, not finite numbers).

    Attributes:
        orientation: ImageOrientationPatient, 6 direction cosines (row, then column).
        position: ImagePositionPatient, the first pixel's centre in mm.
        spacing: PixelSpacing, (row spacing, column spacing) in mm.
    """

    orientation: list[float] | None
    position: list[float] | None
    spacing: list[float] | None

    @property
    def complete(self) -> bool:
        """True when the frame has all three, so it is placed in the patient."""
        return None not in self

    def placed(self) -> tuple[list[float], list[float], list[float]] | None:
        """``(orientation, position, spacing)`` when the frame has all three, else None."""
        if self.orientation is None or self.position is None or self.spacing is None:
            return None
        return self.orientation, self.position, self.spacing


def frame_geometry(ds: Dataset, frame: int = 0) -> FrameGeometry:
    """ImageOrientationPatient, ImagePositionPatient and PixelSpacing of a frame.

    Read from the data set itself or its functional groups (per-frame, then shared).
    """
    found: dict[str, list[float] | None] = {}
    for key, (sequence, length) in _PLACEMENT.items():
        try:
            sources = [ds, functional_group(ds, sequence, frame)]
            value = next((s.get(key) for s in sources if s is not None and s.get(key)), None)
            numbers = None if value is None else [float(v) for v in value]
        except (TypeError, ValueError, AttributeError):
            numbers = None
        ok = numbers is not None and len(numbers) == length and bool(np.isfinite(numbers).all())
        found[key] = numbers if ok else None
    return FrameGeometry(found["ImageOrientationPatient"], found["ImagePositionPatient"], found["PixelSpacing"])


def frames_affine(ds: Dataset, frames: int) -> np.ndarray | None:
    """The RAS+ affine of a single-frame image, or of a multi-frame one whose frames are evenly stacked."""
    first = frame_geometry(ds, 0).placed()
    if first is None:
        return None
    orientation, position, spacing = first
    try:
        if frames == 1:
            return dicom_affine(orientation, position, spacing)
        placements = [frame_geometry(ds, f).placed() for f in range(frames)]
        stack = [p for p in placements if p is not None and np.allclose(p[0], orientation, atol=1e-4)]
        if len(stack) < len(placements):
            return None
        positions = np.array([p[1] for p in stack])
        steps = np.diff(positions, axis=0)
        step = steps.mean(axis=0)
        if np.linalg.norm(step) < 1e-6 or np.abs(steps - step).max() > 1e-2 * max(1.0, float(np.linalg.norm(step))):
            return None  # frames that are not one evenly spaced stack (e.g. a time series) have no single affine
        return dicom_affine(orientation, position, spacing, step)
    except ValueError:
        return None


def orientation_letters(iop: Sequence[float]) -> tuple[str, str]:
    """Patient Orientation (PS3.3 C.7.6.1.1.1) of rows and columns: the dominant axis of each cosine."""
    letters = []
    for cosine in (np.asarray(iop[:3], float), np.asarray(iop[3:6], float)):
        axis = int(np.argmax(np.abs(cosine)))
        letters.append(("LPH" if cosine[axis] > 0 else "RAF")[axis])
    return letters[0], letters[1]


def source_orientation(ds: Dataset) -> tuple[str, str] | None:
    """The source's own PatientOrientation (one letter per direction), or None when it has no usable one."""
    value = list(ds.get("PatientOrientation") or [])
    if len(value) == 2 and all(isinstance(v, str) and v[:1] in "APRLHF" and v for v in value):
        return value[0][0], value[1][0]  # highdicom takes one letter per direction
    return None
