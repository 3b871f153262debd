"""One manifest row on its way through the decoder, and the text of an image's error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medxai.io import ImageReadError, ManifestRow
from medxai.io.geometry import orientation_code, voxel_spacing
from medxai.io.nifti import NiftiXforms
from medxai.preprocess import PreprocessError

#: A map's per-value SD of its signed attributions (a method with ``uncertainty``), or None.
MapSD = np.ndarray | None


@dataclass
class Item:
    """One manifest row on its way through the decoder: its tensor, geometry and what the index says of it."""

    row: ManifestRow
    tensor: np.ndarray | None = None
    geometry: Any = None
    display: np.ndarray | None = None
    error: str | None = None
    source_files: list[str] = field(default_factory=list)
    nifti_shape: tuple[int, ...] | None = None  # a NIfTI source's own (X, Y, Z[, 1]) shape
    nifti_xforms: NiftiXforms | None = None  # a NIfTI source's own sform, qform and codes
    placement: dict[str, str] = field(default_factory=dict)  # the index's geometry columns
    stored_range: tuple[float, float] | None = None  # the values the file can store, in the image's units
    source_key: str = ""  # what decides the maps, taken before the read (journal.source_key)
    warnings: list[str] = field(default_factory=list)  # the reader's notes (image.meta["warnings"])
    region: np.ndarray | None = None  # the manifest's region mask on the model's output grid (region: manifest)


def placement(geometry: Any) -> dict[str, str]:
    """The index's geometry columns: the source shape, spacing (mm) and orientation code of the maps' axes.

    The orientation code is left empty when the file gave no position in the patient (PNG, NPY, radiographs),
    and the spacing and orientation when its affine is not finite (a hostile NIfTI header).
    """
    shape = tuple(geometry.source_spatial_shape)
    affine = geometry.affine
    if affine is None:
        return {"source_shape": "x".join(map(str, shape)), "spacing": "", "orientation": ""}
    spacing = voxel_spacing(affine, len(shape))
    return {
        "source_shape": "x".join(map(str, shape)),
        "spacing": "x".join(f"{v:.6g}" for v in spacing) if np.isfinite(spacing).all() else "",
        "orientation": orientation_code(affine, len(shape)) if geometry.patient_geometry else "",
    }


def image_error(err: BaseException, path: str) -> str:
    """An image's error text: the reader's own message (which names the file), or the error naming the file."""
    if isinstance(err, (ImageReadError, PreprocessError)) or type(err) is ValueError:  # medxai's own messages
        message = str(err) or type(err).__name__
    else:
        message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return message if path in message else f"{path}: {message}"
