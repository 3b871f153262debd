"""PNG, JPEG and TIFF readers.

The decoders are the ones ``skimage.io.imread`` uses underneath: imageio
(Pillow) for PNG/JPEG and tifffile for TIFF. They are called directly so the
decoder follows the file's content rather than its suffix, and so a TIFF's
axes (pages, samples) are known instead of guessed from the shape.
"""

from __future__ import annotations

import os
import warnings

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image, JpegImagePlugin, PngImagePlugin

from medxai.io.arrays import range_meta
from medxai.io.image import ImageReadError, LoadedImage, as_image_array, describe, read_error
from medxai.io.limits import check_declared_size

__all__ = ["is_jpeg", "is_png", "is_tiff", "read_raster"]

_EXTENSION = {"png": ".png", "jpeg": ".jpg"}
# Opened through the format's own class, Pillow reads the header only and skips its
# decompression-bomb check, so an oversized image gets medxai's message with its size.
_PILLOW_CLASS = {"png": PngImagePlugin.PngImageFile, "jpeg": JpegImagePlugin.JpegImageFile}
# Pillow modes read as one channel (the rest become RGB; alpha is dropped).
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")


def is_png(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts a PNG file."""
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def is_jpeg(head: bytes) -> bool:
    """True when ``head`` starts a JPEG file."""
    return head.startswith(b"\xff\xd8\xff")


def is_tiff(head: bytes) -> bool:
    """True when ``head`` starts a TIFF or BigTIFF file (either byte order)."""
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read_raster(path: str | os.PathLike, kind: str, *, max_pixels: int | None = None) -> LoadedImage:
    """Reads a PNG, JPEG or TIFF file.

    Grey becomes ``(H, W, 1)``, RGB ``(H, W, 3)``; an alpha channel is dropped
    (RGBA -> RGB, grey+alpha -> grey); 16-bit and float values are kept as
    they are. A multi-page grey or RGB TIFF becomes a volume ``(D, H, W, C)``;
    a min-is-white TIFF sets ``invert``. ``meta["stored_range"]`` and
    ``meta["bit_depth"]`` say what the file's samples can hold: (0, 255) and 8
    for 8-bit files, (0, 65535) and 16 for 16-bit ones, a TIFF's BitsPerSample
    (e.g. 12) for other integer samples, None for float TIFFs.

    Args:
        path: the file.
        kind: ``"png"``, ``"jpeg"`` or ``"tiff"`` (what the content is).
        max_pixels: the most values (pixels x channels x pages) the header may
            declare (``data.max_pixels``), checked before decoding; None: no limit.
            Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)
            applies too, and is left as it is.

    Raises:
        ImageReadError: the file cannot be decoded, is too large, or has an unsupported layout.
    """
    path = os.fspath(path)
    invert = False
    meta: dict = {}
    try:
        if kind == "tiff":
            data, invert, meta = _read_tiff(path, max_pixels)
        else:
            _check_pillow_size(path, kind, max_pixels)
            with warnings.catch_warnings():
                # Under max_pixels (checked above), Pillow's bomb *warning* says nothing new.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                data = iio.imread(path, extension=_EXTENSION[kind], index=0)
                if kind == "jpeg" and data.ndim == 3 and data.shape[-1] == 4:
                    # A 4-channel JPEG is CMYK, not RGBA: let Pillow convert it.
                    data = iio.imread(path, extension=".jpg", index=0, mode="RGB")
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        limit = f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}"
        raise read_error(
            f"image too large for Pillow's decompression-bomb limit ({limit})", path, describe(exc)
        ) from None
    except Exception as exc:
        raise read_error(f"cannot decode {kind.upper()} file", path, describe(exc)) from None
    data = np.asarray(data)
    meta["dtype"] = str(data.dtype)
    meta.update(range_meta(data.dtype, meta.pop("bits_per_sample", None)))
    spatial_dims = 3 if meta.get("pages", 1) > 1 else 2
    array = as_image_array(_channels_last(data, spatial_dims, path), path)
    return LoadedImage(array=array, source_path=path, kind=kind, invert=invert, meta=meta)


def _check_pillow_size(path: str, kind: str, max_pixels: int | None) -> None:
    """Refuses a PNG/JPEG whose header declares more than ``max_pixels`` values (nothing decoded)."""
    if max_pixels is None:
        return
    try:
        with _PILLOW_CLASS[kind](path) as im:
            width, height = im.size  # of the first frame, the one read (APNG, MPO)
            mode = im.mode
    except Exception as exc:
        raise read_error(f"cannot decode {kind.upper()} file", path, describe(exc)) from None
    channels = 1 if mode in _GREY_MODES or mode.startswith("I;") else 3
    check_declared_size((height, width), path, max_pixels, channels=channels)


def _channels_last(data: np.ndarray, spatial_dims: int, path: str) -> np.ndarray:
    """Adds a grey channel axis, or drops an alpha channel."""
    if data.ndim == spatial_dims:
        return data[..., np.newaxis]
    if data.ndim == spatial_dims + 1:
        channels = data.shape[-1]
        if channels in (1, 3):
            return data
        if channels == 2:  # grey + alpha
            return data[..., :1]
        if channels == 4:  # RGB + alpha
            return data[..., :3]
    raise read_error("unsupported image shape", path, f"shape {data.shape}")


def _read_tiff(path: str, max_pixels: int | None) -> tuple[np.ndarray, bool, dict]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if max_pixels is not None:
            shape, channels = list(series.shape), 1
            if "S" in series.axes:
                channels = shape.pop(series.axes.index("S"))
            elif tif.pages.first.photometric == tifffile.PHOTOMETRIC.PALETTE:
                channels = 3  # indices become RGB
            check_declared_size(shape, path, max_pixels, channels=channels)
        data = series.asarray()
        axes = series.axes
        page = tif.pages.first  # pages[0] as a TiffPage (IndexError when absent, as pages[0])
        photometric = int(page.photometric) if page.photometric is not None else None
        colormap = page.colormap
        bits: int | None = page.bitspersample
    if photometric == tifffile.PHOTOMETRIC.SEPARATED:
        raise read_error("CMYK TIFF files are not supported", path)
    if photometric == tifffile.PHOTOMETRIC.PALETTE and colormap is not None and "S" not in axes:
        data = np.moveaxis(colormap[:, data], 0, -1)  # indices -> RGB
        axes += "S"
        bits = None  # the colour map's 16-bit entries, not the indices' bits
    if "S" in axes:
        data = np.moveaxis(data, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    # Any axis other than Y, X, S (pages, Z, time...) may hold the slices of a volume.
    extra = [i for i, a in enumerate(axes) if a not in "YXS"]
    singles = tuple(i for i in extra if data.shape[i] == 1)
    data = np.squeeze(data, axis=singles) if singles else data
    axes = "".join(a for i, a in enumerate(axes) if i not in singles)
    extra_axes = [a for a in axes if a not in "YXS"]
    if len(extra_axes) > 1 or not axes.replace("S", "").endswith("YX"):
        raise read_error("unsupported TIFF layout", path, f"axes {series.axes}, shape {series.shape}")
    pages = data.shape[0] if extra_axes else 1
    invert = photometric == tifffile.PHOTOMETRIC.MINISWHITE
    name: str | None = None
    if photometric is not None:
        try:
            name = tifffile.PHOTOMETRIC(photometric).name
        except ValueError:
            name = str(photometric)
    return data, invert, {"pages": pages, "axes": series.axes, "photometric": name, "bits_per_sample": bits}
