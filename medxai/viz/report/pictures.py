"""The run's pictures for the report: map PNGs and ``.npy`` maps, masks, thumbnails, data URIs, links, outlines."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medxai.viz.report.loading import MapRow, Run

#: The largest side of an embedded thumbnail, in pixels (larger pictures are downscaled).
THUMBNAIL_SIZE = 160
JPEG_QUALITY = 85  # thumbnails: artefacts not visible at 150 CSS pixels
_PNG_TRIAL = 64 * 64
#: The ground-truth mask outline colour (cyan: apart from every map colormap).
OUTLINE_COLOUR = "#00e5ff"
#: An explained region's outline colour (deep sky blue, the run's overlays' region colour), drawn into the pictures.
REGION_COLOUR: tuple[int, int, int] = (0, 191, 255)
DISPLAY_BOX = 150  # CSS pixels of the longer side of a thumbnail on screen
_MASK_CACHE = 64  # masks kept in memory (an image's rows and the contact sheet reuse them)

_COLUMNS = {"overlay": "overlay_path", "heatmap": "png_path", "npy": "npy_path"}
_KIND_NAMES = {"overlay": "overlay", "heatmap": "heatmap", "npy": "heatmap from .npy"}


class OutsideRun(ValueError):
    """An index path that leads out of the run folder."""


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a file, None if it is missing.

    Raises:
        OutsideRun: the path leads out of the run folder (an index is never followed out of it).
    """
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise OutsideRun(relative)
    return path if path.is_file() else None


def as_rgb(array: np.ndarray) -> np.ndarray:
    """Any 2D picture (grey, grey+alpha, RGB, RGBA; uint8/uint16/float) as RGB uint8."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"not a picture: shape {np.asarray(array).shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    arr = np.nan_to_num(arr.astype(np.float64))
    top = 255.0 if arr.max(initial=0) > 1.0 else 1.0
    return np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)


def shown_values(heatmap: np.ndarray, output: dict | None = None) -> np.ndarray:
    """What the run's pictures colour for a ``[0, 1]`` map: the display transform of its ``output``
    config (:func:`medxai.viz.render.display_values`; a config from elsewhere: the default)."""
    from medxai.viz.render import display_values

    display = (output or {}).get("display") or {}
    try:
        return display_values(
            heatmap,
            display.get("transform", "gamma"),
            float(display.get("percentile", 99.0)),
            float(display.get("gamma", 0.5)),
        )
    except (TypeError, ValueError):
        return display_values(heatmap)


def colourise_npy(path: Path, colormap: str, output: dict | None = None) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """A saved ``[0, 1]`` map as the RGB picture ``medxai run`` would have written (without its colour
    bar), and a volume's montage slices; ``output``: the run's ``output`` config (montage, display)."""
    from medxai.viz.render import choose_slices, colorize

    output = output or {}
    heatmap = np.load(path, allow_pickle=False)
    heatmap = np.nan_to_num(heatmap.astype(np.float32))
    if heatmap.ndim not in (2, 3):
        raise ValueError(f"map of shape {heatmap.shape}")
    montage = output.get("montage") or {}
    try:
        slices = choose_slices(heatmap, montage.get("slices", "top_mass"), int(montage.get("n", 16)))
    except (TypeError, ValueError):  # a run config from elsewhere: the defaults
        slices = choose_slices(heatmap)
    values = shown_values(heatmap, output)
    shown = slices if heatmap.ndim == 3 else None
    try:
        return colorize(heatmap, colormap, slices=shown, values=values), shown
    except ValueError:
        return colorize(heatmap, "inferno", slices=shown, values=values), shown


#: The SD map's pictures: colours from 0 to this SD, in the map's units ([0, 1] is the map's range).
SD_TOP = 0.5
SD_COLORMAP = "viridis"  # apart from the maps' colours: an SD picture is never read as a map


def colourise_sd(path: Path, slices: tuple[int, ...] | None) -> np.ndarray:
    """A saved SD map (``<stem>.sd.npy``, in the map's units) as an RGB picture: :data:`SD_COLORMAP`
    from 0 to :data:`SD_TOP`; a volume's montage of ``slices`` (its map picture's)."""
    from medxai.viz.render import colorize

    sd = np.nan_to_num(np.load(path, allow_pickle=False).astype(np.float32))
    if sd.ndim not in (2, 3):
        raise ValueError(f"SD map of shape {sd.shape}")
    shown = slices if sd.ndim == 3 else None
    if shown is not None and any(not 0 <= i < sd.shape[0] for i in shown):
        shown = None
    return colorize(sd, SD_COLORMAP, slices=shown, values=np.clip(sd / SD_TOP, 0, 1))


@dataclass
class Picture:
    """A map picture for the report: pixels, where it came from, or why there is none."""

    rgb: np.ndarray | None
    kind: str  # "overlay", "heatmap", "heatmap from .npy" or ""
    problem: str = ""  # why there is no picture, or why a fallback was used
    source: str = ""  # the file it was read from, relative to the run folder
    slices: tuple[int, ...] | None = None  # a volume's montage slices (None: a 2D map, or a run before them)


class Pictures:
    """Reads (and caches) map pictures and masks of one run."""

    def __init__(self, run: Run):
        self.root = run.root
        output = (run.info.get("config") or {}).get("output") or {}
        self.colormap = str(output.get("colormap") or "inferno")
        self.output = output if isinstance(output, dict) else {}
        try:
            self.alpha = min(max(float(output.get("alpha", 0.5)), 0.0), 1.0)
        except (TypeError, ValueError):
            self.alpha = 0.5
        self._masks: dict[str, tuple[np.ndarray | None, str]] = {}

    def _read(self, relative: str) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
        """A picture file's pixels without its colour bar, and its montage slices (from its PNG text)."""
        path = inside(self.root, relative)
        if path is None:
            return None, None
        import imageio.v3 as iio
        from PIL import Image

        from medxai.viz.render import read_layout

        rgb = as_rgb(iio.imread(path, plugin="pillow"))
        with Image.open(path) as picture:
            bar, slices = read_layout(getattr(picture, "text", None) or {})
        if 0 < bar < rgb.shape[1]:
            rgb = rgb[:, : rgb.shape[1] - bar]  # the report draws outlines over the map, not its colour bar
        return rgb, slices

    def picture(self, row: MapRow, prefer: Sequence[str]) -> Picture:
        """The first picture that exists among ``prefer`` ("overlay", "heatmap", "npy")."""
        problems = []
        for kind in prefer:
            relative = row.paths.get(_COLUMNS[kind], "")
            if not relative:
                continue
            try:
                if kind == "npy":
                    path = inside(self.root, relative)
                    rgb, slices = (None, None) if path is None else colourise_npy(path, self.colormap, self.output)
                else:
                    rgb, slices = self._read(relative)
            except OutsideRun:
                problems.append(f"{relative}: not shown (outside the run folder)")
                continue
            except Exception as err:  # a damaged file must not end the report
                problems.append(f"{relative}: unreadable ({type(err).__name__})")
                continue
            if rgb is None:
                problems.append(f"{relative}: file missing")
                continue
            return Picture(rgb, _KIND_NAMES[kind], "; ".join(problems), relative, slices)
        return Picture(None, "", "; ".join(problems))

    def sd(self, row: MapRow, slices: tuple[int, ...] | None) -> Picture:
        """The row's SD map picture (``sd_path``, written with ``uncertainty: true``), or why there is none."""
        relative = row.paths.get("sd_path", "")
        if not relative:
            return Picture(None, "")
        try:
            path = inside(self.root, relative)
            if path is None:
                return Picture(None, "", f"{relative}: file missing")
            return Picture(colourise_sd(path, slices), "SD", "", relative, slices)
        except OutsideRun:
            return Picture(None, "", f"{relative}: not shown (outside the run folder)")
        except Exception as err:  # a damaged file must not end the report
            return Picture(None, "", f"{relative}: unreadable ({type(err).__name__})")

    def shown_values(self, heatmap: np.ndarray) -> np.ndarray:
        """What this run's pictures colour for ``heatmap`` (:func:`shown_values` with the run's output config)."""
        return shown_values(heatmap, self.output)

    def source(self, source_path: str) -> tuple[Any, str]:
        """The image's source as read (a :class:`medxai.io.LoadedImage`), or None and why it cannot be read."""
        if not source_path:
            return None, "the index names no source file"
        try:
            return _read_limited(source_path), ""
        except Exception as err:  # a source moved or damaged since the run must not end the report
            return None, f"the source cannot be read ({type(err).__name__}: {err})"

    def region(self, region_path: str, slices: tuple[int, ...] | None = None) -> tuple[np.ndarray | None, str]:
        """A region target's mask (``region_path``: a bool ``.npy`` at the map's geometry) laid out like the
        pictures (3D: a montage of ``slices``, the map picture's; None: the montage of 16 evenly spaced
        slices of runs before the choice), or a problem; "" gives neither."""
        if not region_path:
            return None, ""
        key = "region:" + region_path  # the masks' cache: an image's methods share their region
        if key not in self._masks:
            if len(self._masks) >= _MASK_CACHE:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = self._load_region(region_path)
        region, problem = self._masks[key]
        return (tiled(region, slices) if region is not None else None), problem

    def _load_region(self, region_path: str) -> tuple[np.ndarray | None, str]:
        try:
            path = inside(self.root, region_path)
            if path is None:
                return None, f"region outline not drawn: {region_path} is missing"
            region = np.load(path, allow_pickle=False) != 0
        except OutsideRun:
            return None, f"region outline not drawn: {region_path} is outside the run folder"
        except Exception as err:  # a damaged file must not end the report
            return None, f"region outline not drawn: {region_path} is unreadable ({type(err).__name__})"
        if region.ndim not in (2, 3) or (region.ndim == 3 and region.shape[0] == 0):
            return None, f"region outline not drawn: {region_path} has shape {region.shape}"
        return region, ""

    def mask(self, mask_path: str) -> tuple[np.ndarray | None, str]:
        """The ground-truth mask as a 2D or 3D bool array, or a problem (:func:`tiled` lays it out like a picture)."""
        if not mask_path:
            return None, ""
        if mask_path not in self._masks:
            if len(self._masks) >= _MASK_CACHE:
                self._masks.pop(next(iter(self._masks)))
            self._masks[mask_path] = self._load_mask(mask_path)
        return self._masks[mask_path]

    @staticmethod
    def _load_mask(mask_path: str) -> tuple[np.ndarray | None, str]:
        try:
            image = _read_limited(mask_path)
        except Exception as err:
            return None, f"mask not shown: {err}"
        mask = np.nan_to_num(image.array).astype(np.float64).max(axis=-1) > 0
        if mask.ndim not in (2, 3) or (mask.ndim == 3 and mask.shape[0] == 0):
            return None, f"mask not shown: unexpected shape {image.array.shape}"
        return mask, ""


def _read_limited(path: str) -> Any:
    """:func:`medxai.io.read_image` under the default size and time limits (a hostile file cannot hang the report)."""
    from medxai.io import read_image
    from medxai.io.limits import DEFAULT_MAX_PIXELS, DEFAULT_READ_TIMEOUT

    return read_image(path, max_pixels=DEFAULT_MAX_PIXELS, timeout=DEFAULT_READ_TIMEOUT)


def tiled(mask: np.ndarray, slices: tuple[int, ...] | None) -> np.ndarray:
    """A 2D mask as it is; a volume's as the montage of ``slices`` (None: 16 evenly spaced, as runs before
    the choice of slices drew them); indices past the volume's depth are left empty."""
    from medxai.viz.render import montage

    if mask.ndim == 2:
        return mask
    if slices is not None and any(i < 0 for i in slices):
        slices = None
    if slices is not None and any(i >= mask.shape[0] for i in slices):
        padded = np.zeros((max(max(slices), mask.shape[0] - 1) + 1, *mask.shape[1:]), dtype=bool)
        padded[: mask.shape[0]] = mask
        mask = padded
    return montage(mask, slices)


def shrink(rgb: np.ndarray, size: int) -> np.ndarray:
    """Downscale so the longer side is at most ``size`` (smaller pictures are kept as they are).

    Pillow's reducing resize: it filters over the whole source footprint (no aliasing)
    and is many times faster than a Gaussian pre-filter on a large overlay.
    """
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return rgb
    from PIL import Image

    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(picture.resize(shape, Image.Resampling.BILINEAR, reducing_gap=2.0))


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB array encoded as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB array encoded as JPEG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encoded_thumbnail(rgb: np.ndarray) -> str:
    """A thumbnail as a ``data:`` URI: JPEG, or PNG when that is smaller.

    Smooth map pictures are several times smaller as JPEG. PNG is tried only for
    pictures of at most :data:`_PNG_TRIAL` pixels (small maps, shown enlarged with
    their pixels visible, where PNG is small and JPEG's blocks would show); encoding
    PNG is what costs time, JPEG is nearly free.
    """
    jpeg = jpeg_bytes(rgb)
    if rgb.shape[0] * rgb.shape[1] <= _PNG_TRIAL:
        png = png_bytes(rgb)
        if len(png) <= len(jpeg):
            return data_uri(png)
    return data_uri(jpeg, "image/jpeg")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """Picture bytes as a ``data:`` URI (the report embeds its thumbnails)."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def file_link(root: Path, relative: str) -> str:
    """A relative URL from ``report.html`` (in ``root``) to an existing file of the run; "" if there is none.

    Paths that lead out of the run folder are never linked.
    """
    if not relative:
        return ""
    try:
        path = inside(root, relative)
    except OutsideRun:
        return ""
    if path is None:
        return ""
    from urllib.parse import quote

    return quote(path.relative_to(root.resolve()).as_posix())


def outline_region(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``rgb`` with the region's outline drawn into it in :data:`REGION_COLOUR`.

    The region is resampled to the picture by nearest neighbour and its inside border
    (:func:`medxai.regions.inner_border`) painted, one picture pixel wide.
    """
    from medxai.preprocess import resize_mask
    from medxai.regions import inner_border

    border = inner_border(resize_mask(region, rgb.shape[:2]))
    out = np.array(rgb, dtype=np.uint8, copy=True)
    out[border] = REGION_COLOUR
    return out


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outline polygons of a 2D bool mask as ``(N, 2)`` arrays of (x, y) in pixel-edge coordinates."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)  # closes outlines that touch the border
    outlines = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance=0.4) - 1.0
        outlines.append(np.stack([contour[:, 1] + 0.5, contour[:, 0] + 0.5], axis=1))
    return outlines


def outline_points(mask: np.ndarray) -> list[str]:
    """The mask's outlines as SVG ``points`` attributes (``"x,y x,y ..."``), one per polygon."""
    return [" ".join(f"{x:.1f},{y:.1f}" for x, y in outline) for outline in mask_contours(mask)]


def display_size(height: int, width: int, box: int = DISPLAY_BOX) -> tuple[int, int]:
    """On-screen ``(width, height)`` in CSS pixels of a picture scaled to fit ``box``."""
    scale = box / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))
