"""Pictures of maps: colour-mapped heatmaps, overlays on the image, 3D montages.

Colormaps come from matplotlib (perceptually uniform ones such as ``inferno`` and
``viridis`` by default), so a map's brightness reads as its value.

Overlays can also carry outlines of the map's strongest regions, as the outline
view of the Keras Integrated Gradients example does: threshold the map at a value
percentile, clean the region up morphologically, drop specks, then draw the
region's boundary (:func:`strongest_regions`, :func:`outline`, :class:`OutlineSpec`).
An explained region (a segmentation model's target, :mod:`medxai.regions`) is outlined
too, in its own colour (:data:`REGION_COLOR`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from skimage.measure import label
from skimage.morphology import closing, disk, opening
from skimage.segmentation import find_boundaries

from medxai.viz.outline_spec import OutlineSpec

__all__ = [
    "REGION_COLOR",
    "OutlineSpec",
    "check_colormap",
    "colorize",
    "montage",
    "outline",
    "overlay",
    "strongest_regions",
]


#: The outline colour of an explained region (deep sky blue): apart from the strongest
#: regions' default green and from the default colormaps' (inferno, viridis) colours.
REGION_COLOR: tuple[int, int, int] = (0, 191, 255)


def check_colormap(name: str) -> None:
    """Raise ValueError for a colormap matplotlib does not know."""
    if name not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {name!r} (e.g. inferno, viridis, magma, turbo, jet)")


def montage(volume: np.ndarray, max_slices: int = 16) -> np.ndarray:
    """Tile evenly spaced slices of a ``(D, H, W[, C])`` volume into one 2D image.

    Example:
        >>> montage(np.zeros((4, 2, 3))).shape
        (4, 6)
    """
    depth = volume.shape[0]
    picked = np.unique(np.linspace(0, depth - 1, min(depth, max_slices)).round().astype(int))
    cols = math.ceil(math.sqrt(len(picked)))
    rows = math.ceil(len(picked) / cols)
    height, width = volume.shape[1:3]
    sheet = np.zeros((rows * height, cols * width, *volume.shape[3:]), dtype=volume.dtype)
    for k, index in enumerate(picked):
        r, c = divmod(k, cols)
        sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = volume[index]
    return sheet


def _as_2d(array: np.ndarray, spatial_rank: int) -> np.ndarray:
    return montage(array) if spatial_rank == 3 else array


def colorize(heatmap: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """A ``(*spatial)`` map in [0, 1] as an RGB uint8 picture (3D: a montage of slices)."""
    check_colormap(colormap)
    flat = _as_2d(np.clip(heatmap, 0, 1), heatmap.ndim)
    rgba = matplotlib.colormaps[colormap](flat)
    return (rgba[..., :3] * 255).round().astype(np.uint8)


# ------------------------------------------------------------------------ outlines


def _slices(array: np.ndarray) -> list[np.ndarray]:
    """2D planes to process one by one: the array itself, or each slice of a volume."""
    return [array] if array.ndim == 2 else list(array)


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Remove 8-connected components of a 2D mask with fewer than ``min_size`` pixels.

    (``skimage.morphology.remove_small_objects`` changed its size argument's meaning
    in 0.26, so the rule is written out here.)
    """
    if min_size <= 1 or not mask.any():
        return mask
    labels = label(mask, connectivity=2)
    keep = np.bincount(labels.ravel()) >= min_size
    keep[0] = False
    return keep[labels]


def strongest_regions(
    heatmap: np.ndarray,
    *,
    top_percent: float = 10.0,
    cleanup: bool = True,
    radius: int = 2,
    min_size: int = 32,
) -> np.ndarray:
    """The mask of a map's strongest regions, optionally cleaned up.

    1. Threshold: keep the non-zero values at or above the value that holds the top
       ``top_percent`` % of the map's values (the ``ceil(n * top_percent / 100)``-th
       largest of its ``n`` values; ties at the threshold are all kept). Values,
       not cumulative mass (unlike the Keras IG example's outline step).
    2. Clean-up (``cleanup=True``): binary opening, then closing, with a disk of
       ``radius`` (``skimage.morphology.opening``/``closing``, borders reflected),
       which removes specks and fills pinholes; then connected components
       (8-connected) smaller than ``min_size`` pixels are removed.

    3D volumes ``(D, H, W)``: the threshold is taken over the whole volume, but
    the clean-up runs slice by slice (in-plane disk, per-slice components,
    ``min_size`` in pixels of a slice). Medical volumes are often anisotropic, and
    a ball would erase a lesion thinner than ``2 * radius + 1`` slices.

    Edge cases: an all-zero map has no region (an all-False mask); ``top_percent=100``
    gives every non-zero pixel; a single hot pixel is removed by the clean-up
    whenever ``min_size > 1`` (or ``radius >= 1``).

    Args:
        heatmap: ``(H, W)`` or ``(D, H, W)`` map, normally in [0, 1].
        top_percent: Share of the values to keep, ``0 < top_percent <= 100``.
        cleanup: Apply opening/closing and the small-region filter.
        radius: Disk radius in pixels (>= 0; 0 = no opening/closing).
        min_size: Smallest region kept, in pixels (>= 0).

    Returns:
        A bool array of the map's shape.

    Raises:
        ValueError: a map that is not 2D/3D or not finite, or bad parameters.
    """
    spec = OutlineSpec(top_percent=top_percent, cleanup=cleanup, radius=radius, min_size=min_size)
    values = np.asarray(heatmap, dtype=np.float64)
    if values.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D map, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("map contains NaN or infinite values")
    if values.size == 0 or not (values > 0).any():
        return np.zeros(values.shape, dtype=bool)
    keep = math.ceil(values.size * spec.top_percent / 100)
    threshold = np.partition(values.ravel(), values.size - keep)[values.size - keep]
    mask = (values >= threshold) & (values > 0)
    if not spec.cleanup:
        return mask
    if spec.radius > 0:
        footprint = disk(spec.radius)
        if mask.ndim == 3:
            footprint = footprint[np.newaxis]  # in-plane only: slice by slice
        mask = closing(opening(mask, footprint, mode="reflect"), footprint, mode="reflect")
    return np.stack([_drop_small(plane, spec.min_size) for plane in _slices(mask)]).reshape(mask.shape)


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a mask's regions (``find_boundaries``, mode ``"inner"``).

    ``"inner"`` marks the region's own pixels that touch the background
    (4-neighbourhood): a 1-pixel line that never covers the image outside the
    region, so what lies inside the outline is exactly the region. (``"thick"``
    would be 2 pixels wide, half of it outside.) The mask is padded with
    background first, so a region touching the image edge gets a closed outline.
    Volumes ``(D, H, W)`` are outlined slice by slice, as they are shown in a montage.

    Args:
        mask: ``(H, W)`` or ``(D, H, W)`` bool mask.

    Returns:
        A bool array of the mask's shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D mask, got shape {mask.shape}")
    if mask.size == 0:
        return mask.copy()
    planes = [find_boundaries(np.pad(plane, 1), connectivity=1, mode="inner")[1:-1, 1:-1] for plane in _slices(mask)]
    return np.stack(planes).reshape(mask.shape)


_outline_of = outline  # overlay()'s keyword argument `outline` shadows the function


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    colormap: str = "inferno",
    alpha: float = 0.5,
    outline: OutlineSpec | Mapping[str, Any] | None = None,
    region: np.ndarray | None = None,
    region_color: tuple[int, int, int] = REGION_COLOR,
) -> np.ndarray:
    """Blend a colour-mapped heatmap over the image a person sees.

    Args:
        image: ``(*spatial, 1 or 3)`` display image in [0, 1] (windowed, inverted
            for MONOCHROME1), at the same spatial shape as ``heatmap``.
        heatmap: ``(*spatial)`` map in [0, 1].
        colormap: A matplotlib colormap name.
        alpha: Opacity of the map, scaled by the map value so unimportant places
            stay the image itself.
        outline: None (no outlines), or an :class:`OutlineSpec` (or a mapping of
            its fields): the boundaries of :func:`strongest_regions` are drawn in
            ``color`` on top of the picture; with ``only=True`` on the plain image.
            For volumes the regions are found on the volume and the outline mask
            is tiled with the same :func:`montage` as the picture.
        region: None, or the explained region: a bool mask of the heatmap's shape whose
            boundary (:func:`outline`, slice by slice for volumes, tiled like the picture)
            is drawn in ``region_color`` last, over everything else, so it stays visible
            where it crosses the strongest regions' outline.
        region_color: RGB of the region's outline, three ints in 0..255 (default
            :data:`REGION_COLOR`, apart from the outline's default green).

    Returns:
        RGB uint8 picture (3D inputs: a montage of slices).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape[:-1] != heatmap.shape:
        raise ValueError(f"image {image.shape[:-1]} and heatmap {heatmap.shape} differ in shape")
    if region is not None and np.shape(region) != heatmap.shape:
        raise ValueError(f"region {np.shape(region)} and heatmap {heatmap.shape} differ in shape")
    check_colormap(colormap)
    spec = OutlineSpec.coerce(outline)
    rank = heatmap.ndim
    grey = np.clip(image, 0, 1)
    grey = np.repeat(grey, 3, axis=-1) if grey.shape[-1] == 1 else grey[..., :3]
    grey = _as_2d(grey, rank)
    if spec is not None and spec.only:
        blended = grey
    else:
        values = _as_2d(np.clip(heatmap, 0, 1), rank)
        colour = matplotlib.colormaps[colormap](values)[..., :3]
        weight = alpha * values[..., None]
        blended = np.clip((1 - weight) * grey + weight * colour, 0, 1)
    picture = (blended * 255).round().astype(np.uint8)
    if spec is not None:
        regions = strongest_regions(
            np.clip(heatmap, 0, 1),
            top_percent=spec.top_percent,
            cleanup=spec.cleanup,
            radius=spec.radius,
            min_size=spec.min_size,
        )
        picture[_as_2d(_outline_of(regions), rank)] = spec.color
    if region is not None:
        picture[_as_2d(_outline_of(region), rank)] = region_color
    return picture
