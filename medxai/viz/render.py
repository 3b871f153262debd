"""Pictures of maps: colour-mapped heatmaps, overlays on the image, 3D montages.

Colormaps come from matplotlib (perceptually uniform ones such as ``inferno`` and
``viridis`` by default), so a map's brightness reads as its value.

Overlays can also carry outlines of the map's strongest regions, as the outline
view of the Keras Integrated Gradients example does: threshold the map at a value
percentile, clean the region up morphologically, drop specks, then draw the
region's boundary (:func:`strongest_regions`, :func:`outline`, :class:`OutlineSpec`).
An explained region (a segmentation model's target, :mod:`medxai.regions`) is outlined
too, in its own colour (:data:`REGION_COLOR`).

Volumes are shown as a montage of slices chosen once per map (:func:`choose_slices`:
by default the slices holding the most map mass, the peak's always among them), each
tile numbered with its slice index, and as three orthogonal views through the peak
voxel (:func:`orthogonal_views`). Pictures may carry a colour bar (:func:`with_colour_bar`)
and a display transform (:func:`display_values`) that changes the picture, never the map.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from skimage.measure import label
from skimage.morphology import closing, disk, opening
from skimage.segmentation import find_boundaries

from medxai.viz.outline_spec import OutlineSpec

__all__ = [
    "DISPLAY_TRANSFORMS",
    "REGION_COLOR",
    "SLICE_CHOICES",
    "OutlineSpec",
    "apply_colormap",
    "check_colormap",
    "choose_slices",
    "colorize",
    "colour_bar_width",
    "display_caption",
    "display_values",
    "layout_text",
    "read_layout",
    "montage",
    "montage_grid",
    "orthogonal_views",
    "peak_voxel",
    "outline",
    "overlay",
    "strongest_regions",
    "text_mask",
    "with_colour_bar",
]


#: The outline colour of an explained region (deep sky blue): apart from the strongest
#: regions' default green and from the default colormaps' (inferno, viridis) colours.
REGION_COLOR: tuple[int, int, int] = (0, 191, 255)


def check_colormap(name: str) -> None:
    """Raise ValueError for a colormap matplotlib does not know."""
    if name not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {name!r} (e.g. inferno, viridis, magma, turbo, jet)")


@functools.lru_cache(maxsize=32)
def _colour_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A colormap's ``N`` RGB colours (float64 in [0, 1], read-only) and its colour for NaN."""
    check_colormap(name)
    colormap = matplotlib.colormaps[name]
    table = colormap(np.arange(colormap.N))[:, :3]
    table.flags.writeable = False
    return table, np.asarray(colormap(np.nan)[:3])


def apply_colormap(values: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """RGB float64 in [0, 1] of ``values`` in [0, 1], exactly as ``matplotlib.colormaps[colormap](values)[..., :3]``.

    The colormap's table is looked up once per name (matplotlib copies the colormap and
    rebuilds the lookup on every call, which cost more than the picture on small maps).
    Values outside [0, 1] take the end colours; NaN takes the colormap's "bad" colour.

    Example:
        >>> v = np.array([0.0, 0.3, 1.0])
        >>> bool(np.array_equal(apply_colormap(v, "viridis"), matplotlib.colormaps["viridis"](v)[:, :3]))
        True
    """
    table, bad = _colour_table(colormap)
    values = np.asarray(values)
    n = len(table)
    missing = np.isnan(values)
    scaled = np.clip(np.where(missing, 0, values) if missing.any() else values, 0, 1) * n  # in the values' dtype
    colours = table[np.minimum(scaled, n - 1).astype(np.intp)]
    colours[missing] = bad
    return colours


#: How a volume's montage picks its slices (``output.montage.slices``).
SLICE_CHOICES = ("top_mass", "even", "all")
#: Display transforms of pictures (``output.display.transform``).
DISPLAY_TRANSFORMS = ("percentile", "gamma", "none")


def _evenly(depth: int, n: int = 16) -> tuple[int, ...]:
    """At most ``n`` evenly spaced slice indices of ``depth`` slices, first and last included."""
    return tuple(int(i) for i in np.unique(np.linspace(0, depth - 1, min(depth, n)).round().astype(int)))


def choose_slices(heatmap: np.ndarray, slices: str = "top_mass", n: int = 16) -> tuple[int, ...]:
    """The slice indices (first axis, ascending) of a ``(D, H, W)`` map that its montage shows.

    ``top_mass``: the ``n`` slices with the most map mass (sum of the map's values), the
    peak voxel's slice always among them; ``even``: ``n`` evenly spaced slices, the one
    nearest the peak's slice replaced by it; ``all``: every slice. Choose once per map
    and pass the indices to :func:`colorize`, :func:`overlay` and :func:`montage`, so every
    picture of a map shows the same slices.

    Example:
        >>> volume = np.zeros((32, 2, 2)); volume[5] = 1.0
        >>> 5 in choose_slices(volume, "even", 16), choose_slices(volume, "top_mass", 2)
        (True, (0, 5))
    """
    if slices not in SLICE_CHOICES:
        raise ValueError(f"slices must be one of {', '.join(SLICE_CHOICES)}, got {slices!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    values = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    depth = values.shape[0]
    if slices == "all" or depth <= n:
        return tuple(range(depth))
    peak = int(np.unravel_index(np.argmax(values), values.shape)[0]) if values.size else 0
    if slices == "even":
        picked = list(_evenly(depth, n))
        if peak not in picked:
            picked[int(np.argmin([abs(i - peak) for i in picked]))] = peak
        return tuple(sorted(picked))
    mass = values.reshape(depth, -1).sum(axis=1)
    order = [peak, *(int(i) for i in np.argsort(-mass, kind="stable") if i != peak)]
    return tuple(sorted(order[:n]))


def montage_grid(count: int) -> tuple[int, int]:
    """``(rows, columns)`` of tiles in a montage of ``count`` slices."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / cols)), cols


def montage(volume: np.ndarray, slices: Sequence[int] | None = None, max_slices: int = 16) -> np.ndarray:
    """Tile slices of a ``(D, H, W[, C])`` volume into one 2D image, row by row.

    Args:
        volume: The volume.
        slices: The slice indices to show, in order (:func:`choose_slices`); None: at
            most ``max_slices`` evenly spaced slices.
        max_slices: The number of slices when ``slices`` is None.

    Example:
        >>> montage(np.zeros((4, 2, 3))).shape
        (4, 6)
    """
    depth = volume.shape[0]
    if slices is None:
        picked = list(_evenly(depth, max_slices))
    else:
        picked = [int(i) for i in slices]
    rows, cols = montage_grid(len(picked))
    height, width = volume.shape[1:3]
    sheet = np.zeros((rows * height, cols * width, *volume.shape[3:]), dtype=volume.dtype)
    for k, index in enumerate(picked):
        r, c = divmod(k, cols)
        sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = volume[index]
    return sheet


# --------------------------------------------------------------- digits and letters
# A 3x5 bitmap font: each glyph five rows of three pixels ("#" drawn).
_GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    ".": ("...", "...", "...", "...", ".#."),
    "-": ("...", "...", "###", "...", "..."),
    "=": ("...", "###", "...", "###", "..."),
    " ": ("...", "...", "...", "...", "..."),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "C": ("###", "#..", "#..", "#..", "###"),
    "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"),
    "G": ("###", "#..", "#.#", "#.#", "###"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": ("###", "#.#", "#.#", "#.#", "###"),
    "P": ("###", "#.#", "###", "#..", "#.."),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": ("###", "#..", "###", "..#", "###"),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "W": ("#.#", "#.#", "###", "###", "#.#"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."),
    "Z": ("###", "..#", ".#.", "#..", "###"),
}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """``text`` (digits, ``.``, ``-``, space and some capitals) as a bool bitmap, 5 * ``scale`` pixels high.

    Unknown characters are drawn as spaces.
    """
    blank = _GLYPHS[" "]
    columns: list[np.ndarray] = []
    for k, char in enumerate(text.upper()):
        glyph = np.array([[c == "#" for c in row] for row in _GLYPHS.get(char, blank)])
        if k:
            columns.append(np.zeros((5, 1), bool))
        columns.append(glyph)
    bitmap = np.concatenate(columns, axis=1) if columns else np.zeros((5, 0), bool)
    return np.kron(bitmap, np.ones((scale, scale), bool)).astype(bool)


def _stamp(picture: np.ndarray, text: str, top: int, left: int, scale: int = 1) -> None:
    """Draw ``text`` in white on a black box at ``(top, left)`` of an RGB uint8 picture (clipped to it)."""
    glyphs = text_mask(text, scale)
    box = np.zeros((glyphs.shape[0] + 2, glyphs.shape[1] + 2), bool)
    box[1:-1, 1:-1] = glyphs
    height = min(box.shape[0], picture.shape[0] - top)
    width = min(box.shape[1], picture.shape[1] - left)
    if height <= 0 or width <= 0:
        return
    area = picture[top : top + height, left : left + width]
    area[...] = 0
    area[box[:height, :width]] = 255


def _number_tiles(picture: np.ndarray, slices: Sequence[int], tile: tuple[int, int]) -> np.ndarray:
    """Each tile of a montage picture numbered with its slice index in its top-left corner.

    The digits (on a black box) are drawn where the box fits in half the tile's width and a
    third of its height (tiles from 21 pixels high); larger from 128-pixel tiles.
    """
    height, width = tile
    scale = max(1, height // 128)
    _, cols = montage_grid(len(slices))
    for k, index in enumerate(slices):
        label = text_mask(str(index), scale)
        if label.shape[1] + 2 > width // 2 or label.shape[0] + 2 > height // 3:
            continue
        r, c = divmod(k, cols)
        _stamp(picture, str(index), r * height, c * width, scale)
    return picture


# --------------------------------------------------------------- display transform


def display_values(
    heatmap: np.ndarray, transform: str = "gamma", percentile: float = 99.0, gamma: float = 0.5
) -> np.ndarray:
    """The map as a picture shows it, in [0, 1] (the map itself is never changed).

    ``gamma`` (the default): raised to the power ``gamma`` (below 1 brightens faint values; the
    peak stays the only value at 1, so the top colour still marks it); ``percentile``: divided by
    its ``percentile``-th percentile value and clipped at 1
    (everything above that percentile is drawn at the top colour; a map whose percentile
    is 0, as a sparse map's often is, is divided by its maximum; beware: where the map's signal
    covers less than ``100 - percentile`` % of it, its noise is stretched to the top colour);
    ``none``: as it is.
    """
    if transform not in DISPLAY_TRANSFORMS:
        raise ValueError(f"transform must be one of {', '.join(DISPLAY_TRANSFORMS)}, got {transform!r}")
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, 1)
    if transform == "gamma":
        return np.power(values, np.float32(gamma))
    if transform == "percentile" and values.size:
        top = float(np.percentile(values, percentile))
        if top <= 0:
            top = float(values.max())
        if top > 0:
            return np.clip(values / np.float32(top), 0, 1)
    return values


def display_caption(transform: str = "none", percentile: float = 99.0, gamma: float = 0.5) -> str:
    """What a colour bar shows: ``MAP`` with the display transform's words (``MAP CLIP P99``, ``MAP GAMMA 0.5``)."""
    if transform == "percentile":
        return f"MAP CLIP P{percentile:g}"
    if transform == "gamma":
        return f"MAP GAMMA {gamma:g}"
    return "MAP"


def colour_bar_width(height: int) -> int:
    """The width in pixels of the colour bar :func:`with_colour_bar` puts beside a picture ``height`` pixels high."""
    scale = max(1, height // 128)
    return 2 + 6 * scale + 2 + 3 * scale + 2 + (7 * scale + 2 if height >= 40 * scale else 0)


def with_colour_bar(picture: np.ndarray, colormap: str = "inferno", caption: str = "MAP") -> np.ndarray:
    """``picture`` (RGB uint8) with a vertical colour bar on its right: the colormap from 0
    (bottom) to 1 (top), ticks ``1`` and ``0``, and ``caption`` written along it where it fits.

    The strip is :func:`colour_bar_width` pixels wide; the picture itself is unchanged.
    """
    check_colormap(colormap)
    strip = _colour_bar(picture.shape[0], colormap, caption)
    return np.concatenate([np.asarray(picture, np.uint8), strip], axis=1)


@functools.lru_cache(maxsize=64)
def _colour_bar(height: int, colormap: str, caption: str) -> np.ndarray:
    """The colour bar strip of :func:`with_colour_bar` (read-only: one per height, colormap and caption)."""
    scale = max(1, height // 128)
    width = colour_bar_width(height)
    strip = np.zeros((height, width, 3), np.uint8)
    bar_left, bar_width = 2, 6 * scale
    colours = (apply_colormap(np.linspace(1.0, 0.0, height), colormap) * 255).round().astype(np.uint8)
    strip[:, bar_left : bar_left + bar_width] = colours[:, None, :]
    label_left = bar_left + bar_width + 1
    if height >= 5 * scale + 2:
        _stamp(strip, "1", 0, label_left, scale)
        _stamp(strip, "0", height - 5 * scale - 2, label_left, scale)
    if height >= 40 * scale:
        words = text_mask(caption, scale)
        if words.shape[1] + 2 > height - 2 * (5 * scale + 4):
            words = text_mask(caption.split(" ")[0], scale)
        vertical = np.rot90(words)  # read from the bottom up
        left = label_left + 3 * scale + 2
        top = (height - vertical.shape[0]) // 2
        if 0 <= top and left + vertical.shape[1] <= width:
            strip[top : top + vertical.shape[0], left : left + vertical.shape[1]][vertical] = 255
    strip.flags.writeable = False
    return strip


#: The PNG ``tEXt`` keys of a picture's layout (:func:`layout_text`, :func:`read_layout`).
LAYOUT_BAR, LAYOUT_SLICES = "medxai:colour_bar", "medxai:slices"


def layout_text(picture: np.ndarray, slices: Sequence[int] | None, bar: bool = True) -> dict[str, str]:
    """A picture's layout as PNG text: the colour bar's width in pixels (on the right), a montage's slices.

    Readers (the report) cut the bar off and tile masks with the same slices, so outlines line up.
    """
    text = {LAYOUT_BAR: str(colour_bar_width(picture.shape[0]) if bar else 0)}
    if slices:
        text[LAYOUT_SLICES] = " ".join(str(int(i)) for i in slices)
    return text


def read_layout(text: Mapping[str, Any]) -> tuple[int, tuple[int, ...] | None]:
    """``(colour bar width, montage slices or None)`` from a PNG's text (``(0, None)`` where absent or damaged)."""
    try:
        bar = max(0, int(str(text.get(LAYOUT_BAR, "0"))))
    except ValueError:
        bar = 0
    try:
        words = str(text.get(LAYOUT_SLICES, "")).split()
        slices = tuple(int(w) for w in words) if words else None
    except ValueError:
        slices = None
    return bar, slices


def _as_2d(array: np.ndarray, spatial_rank: int, slices: Sequence[int] | None = None) -> np.ndarray:
    return montage(array, slices) if spatial_rank == 3 else array


def _finish(
    picture: np.ndarray, heatmap: np.ndarray, slices: Sequence[int] | None, bar: str | None, colormap: str
) -> np.ndarray:
    """A montage's tiles numbered, then the colour bar (``bar``: its caption; None: none)."""
    if heatmap.ndim == 3:
        shown = _evenly(len(heatmap)) if slices is None else slices
        picture = _number_tiles(picture, shown, heatmap.shape[1:3])
    return picture if bar is None else with_colour_bar(picture, colormap, bar)


def colorize(
    heatmap: np.ndarray,
    colormap: str = "inferno",
    *,
    slices: Sequence[int] | None = None,
    values: np.ndarray | None = None,
    bar: str | None = None,
) -> np.ndarray:
    """A ``(*spatial)`` map in [0, 1] as an RGB uint8 picture (3D: a montage of numbered slices).

    Args:
        heatmap: The map.
        colormap: A matplotlib colormap name.
        slices: A volume's slices to show (:func:`choose_slices`); None: 16 evenly spaced.
        values: What to colour instead of the map (:func:`display_values` of it), the map's shape.
        bar: None: no colour bar; else the colour bar's caption (:func:`with_colour_bar`).
    """
    check_colormap(colormap)
    shown = np.clip(heatmap if values is None else values, 0, 1)
    flat = _as_2d(shown, heatmap.ndim, slices)
    picture = (apply_colormap(flat, colormap) * 255).round().astype(np.uint8)
    return _finish(picture, heatmap, slices, bar, colormap)


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


#: The shown map value from which an overlay is drawn at its full ``alpha`` (below: a linear ramp from 0).
OPAQUE_FROM = 0.5

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
    slices: Sequence[int] | None = None,
    values: np.ndarray | None = None,
    bar: str | None = None,
) -> np.ndarray:
    """Blend a colour-mapped heatmap over the image a person sees.

    Args:
        image: ``(*spatial, 1 or 3)`` display image in [0, 1] (windowed, inverted
            for MONOCHROME1), at the same spatial shape as ``heatmap``.
        heatmap: ``(*spatial)`` map in [0, 1].
        colormap: A matplotlib colormap name.
        alpha: Opacity of the map where its shown value is at least :data:`OPAQUE_FROM`;
            below, the opacity ramps down linearly to 0 at value 0, so unimportant
            places stay the image itself while faint parts of a sparse map still show.
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
        slices: A volume's slices to show (:func:`choose_slices`); None: 16 evenly spaced.
            The outlines are tiled with the same slices.
        values: What to colour instead of the map (:func:`display_values` of it); the
            outlines are found on the map itself.
        bar: None: no colour bar; else the colour bar's caption (:func:`with_colour_bar`).

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
    grey = _as_2d(grey, rank, slices)
    if spec is not None and spec.only:
        blended = grey
    else:
        if values is not None and np.shape(values) != heatmap.shape:
            raise ValueError(f"values {np.shape(values)} and heatmap {heatmap.shape} differ in shape")
        shown = _as_2d(np.clip(heatmap if values is None else values, 0, 1), rank, slices)
        colour = apply_colormap(shown, colormap)
        weight = alpha * np.clip(shown / OPAQUE_FROM, 0, 1)[..., None]
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
        picture[_as_2d(_outline_of(regions), rank, slices)] = spec.color
    if region is not None:
        picture[_as_2d(_outline_of(region), rank, slices)] = region_color
    return _finish(picture, heatmap, slices, bar, colormap)


def peak_voxel(heatmap: np.ndarray) -> tuple[int, ...]:
    """The index of a map's largest value (the first one, in C order, among equal maxima)."""
    values = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    return tuple(int(i) for i in np.unravel_index(np.argmax(values), values.shape))


def orthogonal_views(
    heatmap: np.ndarray,
    image: np.ndarray | None = None,
    *,
    colormap: str = "inferno",
    alpha: float = 0.5,
    values: np.ndarray | None = None,
    bar: str | None = None,
    peak: Sequence[int] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Three orthogonal planes of a ``(D, H, W)`` map through its peak voxel, side by side.

    Left to right: the slice ``[z]`` (``H x W``), the plane ``[:, y]`` (``D x W``) and the
    plane ``[:, :, x]`` (``D x H``), each labelled ``Z=<z>``, ``Y=<y>``, ``X=<x>`` in its corner,
    shown at the voxel grid (no resampling for anisotropic spacing); the map over ``image``
    (``(D, H, W, 1 or 3)``) when given (:func:`overlay`), else colour-mapped (:func:`colorize`).

    Returns:
        The RGB uint8 picture (with the colour bar when ``bar`` is a caption) and the voxel ``(z, y, x)``.
    """
    if heatmap.ndim != 3:
        raise ValueError(f"expected a 3D map, got shape {heatmap.shape}")
    z, y, x = (int(i) for i in (peak_voxel(heatmap) if peak is None else peak))
    shown = heatmap if values is None else values
    cuts: list[tuple[str, tuple[Any, ...]]] = [
        (f"Z={z}", (z, slice(None), slice(None))),
        (f"Y={y}", (slice(None), y, slice(None))),
        (f"X={x}", (slice(None), slice(None), x)),
    ]
    planes = []
    for label_text, cut in cuts:
        if image is None:
            plane = colorize(heatmap[cut], colormap, values=shown[cut])
        else:
            plane = overlay(image[cut], heatmap[cut], colormap=colormap, alpha=alpha, values=shown[cut])
        if plane.shape[0] >= 9 and plane.shape[1] >= 4 * len(label_text) + 2:
            _stamp(plane, label_text, 0, 0)
        planes.append(plane)
    height = max(p.shape[0] for p in planes)
    gap = np.zeros((height, 2, 3), np.uint8)
    parts: list[np.ndarray] = []
    for plane in planes:
        padded = np.zeros((height, plane.shape[1], 3), np.uint8)
        padded[: plane.shape[0]] = plane
        parts += [padded, gap]
    picture = np.concatenate(parts[:-1], axis=1)
    if bar is not None:
        picture = with_colour_bar(picture, colormap, bar)
    return picture, (z, y, x)
