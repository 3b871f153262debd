"""The report's interactive viewer: an image's source and its maps, packed small for the page's script.

For each image the report embeds (in order, until ``viewer_mb`` megabytes are spent) the page gets:

- the **source** at the maps' geometry (the index's maps are at the source's geometry),
  downscaled in-plane by whole factors (block mean) to at most :data:`VIEWER_SIDE_3D`
  (volumes) or :data:`VIEWER_SIDE_2D` (2D images) pixels a side, in its own units
  (Hounsfield units for CT), so the page can window it: the window the run showed,
  the file's (DICOM) window, CT presets, the full range;
- each **map** over the same grid (block maximum: a one-voxel peak is never averaged
  away), as the run's display transform shows it (:func:`medxai.viz.render.display_values`,
  the pictures' one implementation), 8 bits, and its peak voxel;
- the geometry: the downscaling factors and the voxel spacing (the orthogonal views'
  aspect), the source slice index of every shown slice;
- the ground-truth mask (the manifest's ``mask_column``) over the same grid, whose outline
  the page draws over every plane.

Arrays are packed by :func:`pack`: the values or their differences along the last axis
(whichever compresses better), split in byte planes, zlib (deflate) level 6, base64.
The page decodes them with the browser's ``DecompressionStream("deflate")``.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VIEWER_SIDE_3D = 128  # the longest in-plane side of a volume in the viewer, in pixels
VIEWER_SIDE_2D = 256  # the longest side of a 2D image in the viewer
VIEWER_DEPTH = 256  # slices of a volume in the viewer (deeper volumes are merged in whole blocks)
VIEWER_MB = 100  # megabytes of viewer data a report embeds by default (later images show thumbnails only)
#: Window/level presets offered for CT (Hounsfield units): name, centre, width.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("soft tissue", 40.0, 400.0),
    ("lung", -600.0, 1500.0),
    ("bone", 400.0, 1800.0),
    ("brain", 40.0, 80.0),
)
_LEVELS = 65535  # the source's quantisation levels when its values are not integers (or span more)


def _planes(arr: np.ndarray) -> bytes:
    """The array's bytes, one plane per byte of the integer (low bytes first): 16-bit noise compresses better."""
    as_bytes = arr.astype(arr.dtype.newbyteorder("<")).view(np.uint8).reshape(-1, arr.dtype.itemsize)
    return np.ascontiguousarray(as_bytes.T).tobytes()


def pack(values: np.ndarray) -> str:
    """An unsigned integer array (C order) as ``"r:"`` or ``"d:"`` + base64 of zlib of its byte planes.

    ``"d:"``: the differences along the last axis are stored (modulo the integer type), chosen
    when that is smaller (smooth pictures); ``"r:"``: the values themselves (noisy ones).

    Example:
        >>> a = np.array([[1, 2, 3], [250, 5, 0]], dtype=np.uint16)
        >>> bool(np.array_equal(unpack(pack(a), a.dtype, a.shape), a))
        True
    """
    arr = np.ascontiguousarray(values)
    if arr.dtype.kind != "u":
        raise ValueError(f"pack takes unsigned integers, got {arr.dtype}")
    delta = np.diff(arr, axis=-1, prepend=np.zeros((*arr.shape[:-1], 1), arr.dtype))  # wraps around, as unsigned
    raw, diff = zlib.compress(_planes(arr), 6), zlib.compress(_planes(delta), 6)
    prefix, data = ("d:", diff) if len(diff) < len(raw) else ("r:", raw)
    return prefix + base64.b64encode(data).decode("ascii")


def unpack(text: str, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`pack` (what the page's script does)."""
    dtype = np.dtype(dtype)
    planes = np.frombuffer(zlib.decompress(base64.b64decode(text[2:])), dtype=np.uint8)
    stored = np.ascontiguousarray(planes.reshape(dtype.itemsize, -1).T).view(dtype.newbyteorder("<"))
    stored = stored.reshape(tuple(shape)).astype(dtype)
    return np.cumsum(stored, axis=-1, dtype=dtype) if text.startswith("d:") else stored


def block_reduce(x: np.ndarray, factors: Sequence[int], how: str) -> np.ndarray:
    """``x`` reduced over blocks of ``factors`` (per leading axis; edge-padded), by ``"mean"`` or ``"max"``.

    Example:
        >>> block_reduce(np.arange(6.0).reshape(2, 3), (2, 2), "max")
        array([[4., 5.]])
    """
    factors = tuple(int(f) for f in factors)
    if len(factors) > x.ndim or min(factors, default=1) < 1:
        raise ValueError(f"factors {factors} do not fit an array of shape {x.shape}")
    if all(f == 1 for f in factors):
        return x
    spatial = x.shape[: len(factors)]
    pad = [(0, -n % f) for n, f in zip(spatial, factors)] + [(0, 0)] * (x.ndim - len(factors))
    padded = np.pad(x, pad, mode="edge")
    shape: list[int] = []
    for n, f in zip(padded.shape, factors):
        shape += [n // f, f]
    blocks = padded.reshape(*shape, *x.shape[len(factors) :])
    axes = tuple(range(1, 2 * len(factors), 2))
    return blocks.max(axis=axes) if how == "max" else blocks.mean(axis=axes)


def factors_for(spatial: Sequence[int]) -> tuple[int, ...]:
    """The whole downscaling factors that bring a 2D image or a ``(D, H, W)`` volume within the viewer's size."""
    if len(spatial) == 2:
        return (math.ceil(max(spatial) / VIEWER_SIDE_2D),) * 2
    depth, height, width = spatial
    plane = math.ceil(max(height, width) / VIEWER_SIDE_3D)
    return math.ceil(depth / VIEWER_DEPTH), plane, plane


@dataclass
class SourceView:
    """An image as the viewer gets it (see the module docstring); :meth:`as_json` is the page's form."""

    dims: tuple[int, int, int]  # (D, H, W) in the viewer; D = 1 for a 2D image
    channels: int
    factors: tuple[int, ...]
    spacing: tuple[float, float, float]  # the viewer's voxel spacing (D, H, W), mm (1 when unknown)
    offset: float  # source value = offset + scale * stored value
    scale: float
    invert: bool
    windows: list[tuple[str, float, float]]
    payload: str
    slice_index: list[int] = field(default_factory=list)  # the source slice of each shown slice

    def as_json(self) -> dict[str, Any]:
        """The viewer's image as the page's JSON."""
        return {
            "dims": list(self.dims),
            "ch": self.channels,
            "factors": list(self.factors),
            "spacing": [round(s, 4) for s in self.spacing],
            "offset": self.offset,
            "scale": self.scale,
            "invert": self.invert,
            "windows": [{"name": n, "c": c, "w": w} for n, c, w in self.windows],
            "z": self.slice_index,
            "src": self.payload,
        }


def _quantise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``values`` as uint16 with ``(offset, scale)``: exact for integer values spanning at most 65,535."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= _LEVELS and np.array_equal(values, np.round(values)):
        return (values - lo).astype(np.uint16), lo, 1.0
    scale = (hi - lo) / _LEVELS if hi > lo else 1.0
    return np.round((values - lo) / scale).astype(np.uint16), lo, scale


def windows_for(
    lo: float, hi: float, file_window: tuple[float, float] | None, run_window: Any, modality: str
) -> list[tuple[str, float, float]]:
    """The window/level choices, the run's own first: its configured window, else the file's, else the full range.

    ``run_window``: the run config's ``preprocess.window`` (``{center, width}``, ``[c, w]``,
    ``"auto"``, or None). CT (``modality`` "CT", or values down to -500 or lower) adds
    :data:`CT_PRESETS`.
    """
    full = ("full range", (lo + hi) / 2, max(hi - lo, 1e-6))
    configured = None
    if isinstance(run_window, Mapping) and {"center", "width"} <= set(run_window):
        configured = (float(run_window["center"]), float(run_window["width"]))
    elif isinstance(run_window, (list, tuple)) and len(run_window) == 2:
        configured = (float(run_window[0]), float(run_window[1]))
    choices: list[tuple[str, float, float]] = []
    if configured is not None:
        choices.append(("as the run (preprocess.window)", *configured))
    if file_window is not None:
        choices.append(("from the file (DICOM window)", float(file_window[0]), float(file_window[1])))
    choices.append(full)
    if modality.upper() == "CT" or lo <= -500:
        choices += list(CT_PRESETS)
    return choices


def source_view(image: Any, run_window: Any = None) -> SourceView:
    """The viewer's source from a :class:`medxai.io.LoadedImage` (2D or 3D, grey or RGB).

    Raises:
        ValueError: the image is not a 2D or 3D image of 1 or 3 channels, or holds no finite value.
    """
    array = np.asarray(image.array, dtype=np.float64)
    if array.ndim not in (3, 4) or array.shape[-1] not in (1, 3):
        raise ValueError(f"the viewer shows 2D or 3D images of 1 or 3 channels, not shape {array.shape}")
    if not np.isfinite(array).any():
        raise ValueError("the image holds no finite value")
    finite = np.isfinite(array)
    array = np.where(finite, array, array[finite].min())  # NaN/inf shown as the lowest value
    spatial = array.shape[:-1]
    factors = factors_for(spatial)
    small = block_reduce(array, factors, "mean")
    stored, offset, scale = _quantise(small)
    volume = stored if stored.ndim == 4 else stored[np.newaxis]  # (D, H, W, C)
    spacing = tuple(float(s) for s in (image.spacing or (1.0,) * len(spatial)))
    spacing = (1.0, *spacing) if len(spatial) == 2 else spacing
    step = (1, *factors) if len(spatial) == 2 else factors
    lo, hi = float(array.min()), float(array.max())
    meta = getattr(image, "meta", {}) or {}
    return SourceView(
        dims=(volume.shape[0], volume.shape[1], volume.shape[2]),
        channels=int(array.shape[-1]),
        factors=tuple(step),
        spacing=(spacing[0] * step[0], spacing[1] * step[1], spacing[2] * step[2]),
        offset=offset,
        scale=scale,
        invert=bool(getattr(image, "invert", False)),
        windows=windows_for(lo, hi, getattr(image, "window", None), run_window, str(meta.get("modality", ""))),
        payload=pack(np.moveaxis(volume, -1, 0)),  # channels as planes: (C, D, H, W)
        slice_index=[i * step[0] for i in range(volume.shape[0])],
    )


def map_view(heatmap: np.ndarray, view: SourceView, values: np.ndarray) -> dict[str, Any]:
    """A map over ``view``'s grid: its shown ``values`` (the display transform of the ``[0, 1]`` map) as 8 bits
    (block maximum), packed, and the peak voxel ``(z, y, x)`` of the map itself.

    Raises:
        ValueError: the map's shape is not the source's.
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    factors = view.factors if heatmap.ndim == 3 else view.factors[1:]
    small = block_reduce(heatmap, factors, "max")
    shown = block_reduce(np.nan_to_num(np.asarray(values, dtype=np.float32)), factors, "max")
    dims = view.dims if heatmap.ndim == 3 else view.dims[1:]
    if small.shape != tuple(dims):
        raise ValueError(f"map of shape {heatmap.shape} is not at its source's geometry")
    volume = small if small.ndim == 3 else small[np.newaxis]
    peak = [int(i) for i in np.unravel_index(int(np.argmax(volume)), volume.shape)]
    q = np.round(np.clip(shown, 0.0, 1.0) * 255).astype(np.uint8)
    return {"map": pack(q if q.ndim == 3 else q[np.newaxis]), "peak": peak}


def mask_view(mask: np.ndarray | None, view: SourceView) -> str | None:
    """A ground-truth mask over ``view``'s grid (block maximum: a small lesion stays), packed as 0/1
    bytes; None without a mask, or for one not at the source's grid (or empty)."""
    if mask is None or not mask.any():
        return None
    factors = view.factors if mask.ndim == 3 else view.factors[1:]
    small = block_reduce(mask.astype(np.uint8), factors, "max")
    volume = small if small.ndim == 3 else small[np.newaxis]
    if volume.shape != tuple(view.dims):
        return None
    return pack(np.ascontiguousarray(volume, dtype=np.uint8))


def colour_table(colormap: str) -> str:
    """The colormap's 256 colours as one hex string (``"rrggbb"`` x 256), for the page's blending."""
    import matplotlib

    from medxai.viz.render import apply_colormap

    if colormap not in matplotlib.colormaps:  # a run config from elsewhere: the pictures' default
        colormap = "inferno"
    rgb = (apply_colormap(np.linspace(0.0, 1.0, 256), colormap) * 255).round().astype(np.uint8)
    return rgb.tobytes().hex()


def image_viewer(image: Any, run: Any, pictures: Any) -> tuple[dict[str, Any] | None, dict[Any, dict], list[str], str]:
    """An image's viewer data: the source's JSON (None when it cannot be shown), each map's JSON by its
    row's key, notes on maps left out, and why there is no viewer ("" when there is one, or no map).

    Args:
        image: The image's :class:`~medxai.viz.report.loading.ImageEntry`.
        run: The :class:`~medxai.viz.report.loading.Run`.
        pictures: The run's :class:`~medxai.viz.report.pictures.Pictures` (reads the source and the maps).
    """
    from medxai.viz.report.pictures import OutsideRun, inside

    rows = [r for r in image.ok_rows if r.paths.get("npy_path")]
    if not rows:
        return None, {}, [], ("no .npy maps written (output.formats without npy)" if image.ok_rows else "")
    loaded, problem = pictures.source(image.source_path)
    if loaded is None:
        return None, {}, [], problem
    config = run.info.get("config") or {}
    try:
        view = source_view(loaded, (config.get("preprocess") or {}).get("window"))
    except ValueError as err:
        return None, {}, [], str(err)
    maps, notes = {}, []
    for row in rows:
        relative = row.paths["npy_path"]
        try:
            path = inside(run.root, relative)
            if path is None:
                notes.append(f"viewer: {relative} is missing")
                continue
            heatmap = np.nan_to_num(np.load(path, allow_pickle=False).astype(np.float32))
            maps[row.key] = map_view(heatmap, view, pictures.shown_values(heatmap))
        except OutsideRun:
            notes.append(f"viewer: {relative} is outside the run folder")
        except Exception as err:  # a damaged map must not end the report
            notes.append(f"viewer: {relative} not shown ({type(err).__name__}: {err})")
    if not maps:
        return None, {}, notes, "no map could be read"
    mask = mask_view(pictures.mask(image.mask_path)[0], view)
    if image.mask_path and mask is None:
        notes.append("viewer: the mask's outline is not drawn (the mask cannot be read or is not at the source's grid)")
    return {**view.as_json(), "alpha": pictures.alpha, **({"mask": mask} if mask else {})}, maps, notes, ""
