"""A DICOM series (a folder of single-frame files) read as one volume.

The files of one SeriesInstanceUID are sorted along the slice normal (the
cross product of ImageOrientationPatient's two vectors, PS3.3 C.7.6.2.1.1),
each slice gets its own modality LUT, and the slice spacing comes from the
positions, never from SliceThickness. What would make the volume's geometry a
guess is refused with the files named: mixed orientations or sizes, two slices
at one position, uneven spacing (a gap), positions off the normal (gantry tilt).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medxai.io.dicom import frame_placement, read_dicom
from medxai.io.geometry import dicom_affine
from medxai.io.image import LoadedImage, describe, read_error

__all__ = ["read_dicom_series"]

#: Positions closer than this (mm) along the normal are the same slice.
_SAME_POSITION_MM = 1e-3
#: A slice-to-slice step may differ from the median step by this fraction before it is a gap.
_STEP_TOLERANCE = 0.01


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> LoadedImage:
    """Reads the single-frame DICOM files of one series in ``folder`` as a ``(slices, rows, cols, 1)`` volume.

    Args:
        folder: a folder holding the series' files (others, e.g. a DICOMDIR or
            a text file, are skipped; sub-folders are not read).
        series_uid: the SeriesInstanceUID to read when the folder holds several series.

    Returns:
        A :class:`LoadedImage` of kind ``"dicom"`` whose slices run along the
        slice normal, with ``spacing`` ``(slice step, row, column)`` in mm, the
        RAS+ ``affine`` of the stack, and ``meta["source_files"]`` the files in
        slice order.

    Raises:
        ImageReadError: no DICOM image in the folder, several series and no
            ``series_uid``, an unknown ``series_uid``, or a series whose geometry
            is not one evenly spaced stack (the message names the files).
    """
    root = Path(os.fspath(folder))
    series = _headers_by_series(root)
    if not series:
        raise read_error("the folder holds no DICOM image files", root)
    if series_uid is None:
        if len(series) > 1:
            listed = "; ".join(f"{uid} ({len(files)} files)" for uid, files in sorted(series.items()))
            raise read_error("the folder holds several DICOM series; name one with a series_uid column", root, listed)
        series_uid = next(iter(series))
    elif series_uid not in series:
        raise read_error(f"series {series_uid} is not in the folder", root, f"it holds: {', '.join(series)}")
    headers = series[series_uid]
    ordered, affine, spacing = _stack_geometry(root, headers)

    slices = [read_dicom(path) for path, _ in ordered]
    first = slices[0]
    if any(s.channels != 1 for s in slices):
        raise read_error("a DICOM series must be greyscale to be read as a volume", root)
    array = np.stack([s.array[..., 0] for s in slices])[..., np.newaxis]
    ranges = [s.meta.get("stored_range") for s in slices]
    meta = {
        **{k: v for k, v in first.meta.items() if k not in ("source_files", "SOPInstanceUID")},
        # each slice has its own rescale: the volume can hold the union of their ranges
        "stored_range": None if None in ranges else (min(r[0] for r in ranges), max(r[1] for r in ranges)),
        "frames": len(slices),
        "files": len(slices),
        "source_files": [path for path, _ in ordered],
    }
    return LoadedImage(
        array=array,
        source_path=os.fspath(root),
        kind="dicom",
        window=first.window,
        invert=first.invert,
        spacing=spacing,
        meta=meta,
        affine=affine,
        patient_geometry=True,
    )


def _headers_by_series(root: Path) -> dict[str, list[tuple[str, Dataset]]]:
    """The image files' headers (no pixel data), grouped by SeriesInstanceUID, in file-name order."""
    series: dict[str, list[tuple[str, Dataset]]] = {}
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: skipped, like any other file beside a series
            continue
        if "DirectoryRecordSequence" in ds or "Rows" not in ds:
            continue  # a DICOMDIR, a structured report, a presentation state...
        uid = str(ds.get("SeriesInstanceUID", "")) or "(no SeriesInstanceUID)"
        series.setdefault(uid, []).append((os.fspath(path), ds))
    return series


def _stack_geometry(
    root: Path, headers: list[tuple[str, Dataset]]
) -> tuple[list[tuple[str, float]], np.ndarray, tuple[float, float, float]]:
    """The files sorted along the normal with their positions, the stack's affine and its spacing."""
    placed = []
    for path, ds in headers:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise read_error("a multi-frame file is in the series folder; give the file itself as the path", path)
        placement = frame_placement(ds)
        if placement is None:
            raise read_error(
                "a series slice lacks ImageOrientationPatient, ImagePositionPatient or PixelSpacing", path
            )
        placed.append((path, ds, *placement))
    path0, ds0, orientation, _, pixel_spacing = placed[0]
    for path, ds, iop, _, ps in placed[1:]:
        if not np.allclose(iop, orientation, atol=1e-4):
            raise read_error(
                "the series mixes slice orientations", root, f"{Path(path0).name}: {orientation}, {Path(path).name}: {iop}"
            )
        if (ds.get("Rows"), ds.get("Columns")) != (ds0.get("Rows"), ds0.get("Columns")):
            raise read_error("the series mixes image sizes", root, f"{Path(path0).name} and {Path(path).name}")
        if not np.allclose(ps, pixel_spacing, rtol=1e-4):
            raise read_error("the series mixes pixel spacings", root, f"{Path(path0).name}: {pixel_spacing}, {Path(path).name}: {ps}")

    iop = np.asarray(orientation).reshape(2, 3)
    normal = np.cross(iop[0], iop[1])
    positions = np.array([p[3] for p in placed])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    positions, along = positions[order], along[order]
    names = [Path(placed[i][0]).name for i in order]

    steps = np.diff(along)
    for k, step in enumerate(steps):
        if step < _SAME_POSITION_MM:
            raise read_error(
                "two slices of the series share one position", root, f"{names[k]} and {names[k + 1]} at {along[k]:g} mm"
            )
    off_normal = positions - positions[0] - np.outer(along - along[0], normal)
    if len(placed) > 1 and np.abs(off_normal).max() > 1e-2:
        raise read_error(
            "the slice positions do not lie along the slice normal (gantry tilt or a sheared series); not supported",
            root,
        )
    if len(steps):
        median = float(np.median(steps))
        uneven = np.flatnonzero(np.abs(steps - median) > _STEP_TOLERANCE * median + _SAME_POSITION_MM)
        if uneven.size:
            k = int(uneven[0])
            raise read_error(
                "the series' slices are unevenly spaced (a missing slice?)",
                root,
                f"{steps[k]:g} mm from {names[k]} to {names[k + 1]}; the series' step is {median:g} mm",
            )
        step_vector = (positions[-1] - positions[0]) / (len(positions) - 1)
        slice_spacing = float(np.linalg.norm(step_vector))
    else:  # one slice: its thickness stands for the step
        thickness = _thickness(placed[0][1])
        step_vector, slice_spacing = normal * thickness, thickness
    try:
        affine = dicom_affine(orientation, positions[0], pixel_spacing, step_vector)
    except ValueError as exc:
        raise read_error("the series' geometry is unusable", root, describe(exc)) from None
    ordered = [(placed[i][0], float(a)) for i, a in zip(order, along)]
    return ordered, affine, (slice_spacing, float(pixel_spacing[0]), float(pixel_spacing[1]))


def _thickness(ds: Dataset) -> float:
    try:
        value = float(ds.get("SliceThickness") or ds.get("SpacingBetweenSlices") or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return value if np.isfinite(value) and value > 0 else 1.0
