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

from medxai.io.dicom import read_dicom
from medxai.io.dicom_geometry import frame_geometry
from medxai.io.dicom_size import declared_size
from medxai.io.geometry import dicom_affine
from medxai.io.image import LoadedImage, describe, read_error
from medxai.io.limits import OnCorrupt, check_declared_size, is_regular_file

__all__ = ["read_dicom_series"]

#: Positions closer than this (mm) along the normal are the same slice.
_SAME_POSITION_MM = 1e-3
#: A slice-to-slice step may differ from the median step by this fraction before it is a gap.
_STEP_TOLERANCE = 0.01
#: Header elements longer than this are not loaded while the folder is scanned.
_DEFER_SIZE = "1 MB"


def read_dicom_series(
    folder: str | os.PathLike,
    series_uid: str | None = None,
    *,
    max_pixels: int | None = None,
    timeout: float | None = None,
    on_corrupt: OnCorrupt = "error",
) -> LoadedImage:
    """Reads the single-frame DICOM files of one series in ``folder`` as a ``(slices, rows, cols, 1)`` volume.

    Args:
        folder: a folder holding the series' files (others, e.g. a DICOMDIR, a
            text file, a FIFO, are skipped; sub-folders are not read).
        series_uid: the SeriesInstanceUID to read when the folder holds several series.
        max_pixels: the most values the series' headers may declare in all
            (``data.max_pixels``), checked before any pixel is decoded; None: no limit.
        timeout: passed to :func:`~medxai.io.dicom.read_dicom` for each slice.
        on_corrupt: passed to :func:`~medxai.io.dicom.read_dicom` for each slice.

    Returns:
        A :class:`LoadedImage` of kind ``"dicom"`` whose slices run along the
        slice normal, with ``spacing`` ``(slice step, row, column)`` in mm, the
        RAS+ ``affine`` of the stack, ``meta["source_files"]`` the files in
        slice order, and ``meta["warnings"]`` the slices' warnings (each once,
        saying how many files have it when not all do).

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
    _check_series_size(root, headers, max_pixels)
    ordered, affine, spacing = _stack_geometry(root, headers)

    # Slices go straight into the volume: peak memory is one volume plus one slice.
    array: np.ndarray | None = None
    first: LoadedImage | None = None
    ranges: list[tuple[float, float] | None] = []
    value_ranges: list[tuple[float, float]] = []
    notes: dict[str, list[str]] = {}
    for k, (path, _) in enumerate(ordered):
        image = read_dicom(path, max_pixels=max_pixels, timeout=timeout, on_corrupt=on_corrupt)
        if image.channels != 1:
            raise read_error("a DICOM series must be greyscale to be read as a volume", root)
        if array is None:
            first = image
            array = np.empty((len(ordered), *image.array.shape), dtype=np.float32)
        elif image.array.shape != array.shape[1:]:
            raise read_error("the series mixes image sizes", root, f"{Path(ordered[0][0]).name} and {Path(path).name}")
        array[k] = image.array
        ranges.append(image.meta.get("stored_range"))
        value_ranges.append(image.meta["value_range"])
        for note in image.meta.get("warnings", []):
            notes.setdefault(note, []).append(Path(path).name)
    if array is None or first is None:  # _stack_geometry gives at least one slice
        raise read_error("the series holds no slices", root)
    known = [r for r in ranges if r is not None]
    meta = {
        **{k: v for k, v in first.meta.items() if k not in ("source_files", "SOPInstanceUID")},
        # each slice has its own rescale: the volume can hold the union of their ranges
        "stored_range": None if None in ranges else (min(r[0] for r in known), max(r[1] for r in known)),
        "value_range": (min(r[0] for r in value_ranges), max(r[1] for r in value_ranges)),
        "frames": len(ordered),
        "files": len(ordered),
        "source_files": [path for path, _ in ordered],
        "warnings": [
            note if len(names) == len(ordered) else f"{note} (in {len(names)} of {len(ordered)} files, e.g. {names[0]})"
            for note, names in notes.items()
        ],
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
    try:
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise read_error("cannot list the folder", root, describe(exc)) from None
    for path in entries:
        if not is_regular_file(path):  # sub-folders; FIFOs, sockets, devices would block or never end
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=_DEFER_SIZE)
        except Exception:  # not DICOM: skipped, like any other file beside a series
            continue
        if "DirectoryRecordSequence" in ds or "Rows" not in ds:
            continue  # a DICOMDIR, a structured report, a presentation state...
        uid = str(ds.get("SeriesInstanceUID", "")) or "(no SeriesInstanceUID)"
        series.setdefault(uid, []).append((os.fspath(path), ds))
    return series


def _check_series_size(root: Path, headers: list[tuple[str, Dataset]], max_pixels: int | None) -> None:
    """Refuses a series whose files declare more than ``max_pixels`` values in all."""
    if max_pixels is None:
        return
    sizes = [declared_size(ds) or (1, 0, 0, 1) for _, ds in headers]
    total = sum(f * r * c * s for f, r, c, s in sizes if min(f, r, c, s) >= 0)
    if total <= max_pixels:
        return
    if len(set(sizes)) == 1:
        frames, rows, cols, samples = sizes[0]
        check_declared_size((len(headers) * frames, rows, cols), root, max_pixels, channels=samples, files=len(headers))
    check_declared_size((total,), root, max_pixels, files=len(headers))


def _stack_geometry(
    root: Path, headers: list[tuple[str, Dataset]]
) -> tuple[list[tuple[str, float]], np.ndarray, tuple[float, float, float]]:
    """The files sorted along the normal with their positions, the stack's affine and its spacing."""
    placed = []
    for path, ds in headers:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise read_error("a multi-frame file is in the series folder; give the file itself as the path", path)
        placement = frame_geometry(ds).placed()
        if placement is None:
            raise read_error("a series slice lacks ImageOrientationPatient, ImagePositionPatient or PixelSpacing", path)
        placed.append((path, ds, *placement))
    path0, ds0, orientation, _, pixel_spacing = placed[0]
    for path, ds, iop, _, ps in placed[1:]:
        if not np.allclose(iop, orientation, atol=1e-4):
            raise read_error(
                "the series mixes slice orientations",
                root,
                f"{Path(path0).name}: {orientation}, {Path(path).name}: {iop}",
            )
        if (ds.get("Rows"), ds.get("Columns")) != (ds0.get("Rows"), ds0.get("Columns")):
            raise read_error("the series mixes image sizes", root, f"{Path(path0).name} and {Path(path).name}")
        if not np.allclose(ps, pixel_spacing, rtol=1e-4):
            raise read_error(
                "the series mixes pixel spacings", root, f"{Path(path0).name}: {pixel_spacing}, {Path(path).name}: {ps}"
            )

    cosines = np.asarray(orientation).reshape(2, 3)
    normal = np.cross(cosines[0], cosines[1])
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
