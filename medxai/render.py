"""Pictures of maps: colour-mapped heatmaps, overlays on the image, 3D montages.

Colormaps come from matplotlib (perceptually uniform ones such as ``inferno`` and
``viridis`` by default), so a map's brightness reads as its value.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np


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


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, colormap: str = "inferno", alpha: float = 0.5
) -> np.ndarray:
    """Blend a colour-mapped heatmap over the image a person sees.

    Args:
        image: ``(*spatial, 1 or 3)`` display image in [0, 1] (windowed, inverted
            for MONOCHROME1), at the same spatial shape as ``heatmap``.
        heatmap: ``(*spatial)`` map in [0, 1].
        colormap: A matplotlib colormap name.
        alpha: Opacity of the map, scaled by the map value so unimportant places
            stay the image itself.

    Returns:
        RGB uint8 picture (3D inputs: a montage of slices).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape[:-1] != heatmap.shape:
        raise ValueError(f"image {image.shape[:-1]} and heatmap {heatmap.shape} differ in shape")
    check_colormap(colormap)
    rank = heatmap.ndim
    grey = np.clip(image, 0, 1)
    grey = np.repeat(grey, 3, axis=-1) if grey.shape[-1] == 1 else grey[..., :3]
    grey = _as_2d(grey, rank)
    values = _as_2d(np.clip(heatmap, 0, 1), rank)
    colour = matplotlib.colormaps[colormap](values)[..., :3]
    weight = alpha * values[..., None]
    blended = np.clip((1 - weight) * grey + weight * colour, 0, 1)
    return (blended * 255).round().astype(np.uint8)
