"""The preprocessing steps, each a function of an array (in the manner of MONAI's named transforms)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medxai.errors import PreprocessError
from medxai.preprocess.spec import PRESETS, ScaleStats

__all__ = [
    "CAFFE_MEAN_BGR",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LUMA_BT601",
    "MAX_ASPECT_CHANGE",
    "ScaleSpec",
    "apply_preset",
    "apply_window",
    "check_aspect_change",
    "check_finite",
    "invert_intensity",
    "match_channels",
    "resize_spatial",
    "scale_intensity",
]

LUMA_BT601 = (0.299, 0.587, 0.114)

#: ImageNet per-channel mean and std of RGB values in [0, 1] (Keras's ``torch`` mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ImageNet per-channel mean of BGR values in [0, 255] (Keras's ``caffe`` mode).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: How much more the resize to the model's input may shrink one in-plane axis than the other.
#: Beyond it the model sees a smear, and the anti-aliasing filter's cost grows with the shrink
#: (a 1 KB JPEG declaring 32 x 64800 spent minutes there).
MAX_ASPECT_CHANGE = 32

ScaleSpec = str | tuple[float, float] | Mapping | ScaleStats | None


def check_finite(x: np.ndarray) -> None:
    """Raises :class:`PreprocessError` when ``x`` holds NaN or infinite values."""
    finite = np.isfinite(x)
    if not finite.all():
        nan = int(np.isnan(x).sum())
        inf = int(x.size - finite.sum()) - nan
        raise PreprocessError(f"image contains {nan} NaN and {inf} infinite value(s)")


def apply_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """Applies a linear VOI window and maps it to [0, 1].

    Values are clipped to ``[center - width/2, center + width/2]`` and mapped
    linearly onto [0, 1]: the LINEAR_EXACT function of DICOM PS3.3
    C.11.2.1.3.2 (C.11.2.1.2's LINEAR differs only by half-unit offsets meant
    for integer stored values).

    Raises:
        ValueError: ``width`` is not positive.
    """
    if not width > 0:
        raise ValueError(f"window width must be > 0, got {width}")
    low = center - width / 2.0
    out = (np.clip(np.asarray(x, dtype=np.float64), low, low + width) - low) / width
    return out.astype(np.float32)


def invert_intensity(x: np.ndarray, *, windowed: bool, stored_range: tuple[float, float] | None = None) -> np.ndarray:
    """Inverts grey levels (MONOCHROME1).

    ``1 - v`` after a window; else ``(low + high) - v`` about ``stored_range`` when
    given (the file's range, for ``scale: stored_range``), else ``(min + max) - v``.
    """
    x = np.asarray(x, dtype=np.float32)
    if windowed:
        return (1.0 - x).astype(np.float32)
    low, high = (x.min(), x.max()) if stored_range is None else stored_range
    return (np.float32(low) + np.float32(high) - x).astype(np.float32)


def resize_spatial(x: np.ndarray, shape: Sequence[int], *, anti_aliasing: bool | None = None) -> np.ndarray:
    """Resizes the spatial axes of ``x`` (shape ``(*spatial, C)``) to ``shape``.

    Linear interpolation (``skimage.transform.resize``, order 1, values kept
    as they are), each channel separately. Anti-aliasing (a Gaussian
    pre-filter) is on when any axis shrinks, unless ``anti_aliasing`` says.
    """
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(int(n) for n in shape)
    if len(shape) != x.ndim - 1:
        raise ValueError(f"target shape {shape} does not match the {x.ndim - 1} spatial axes of {x.shape}")
    if shape == x.shape[:-1]:
        return x.copy()
    from skimage.transform import (
        resize,  # deferred: the spec (a config section) imports light
    )

    if anti_aliasing is None:
        anti_aliasing = any(t < s for t, s in zip(shape, x.shape[:-1]))
    out = np.empty(shape + (x.shape[-1],), dtype=np.float32)
    for c in range(x.shape[-1]):
        out[..., c] = resize(x[..., c], shape, order=1, mode="edge", preserve_range=True, anti_aliasing=anti_aliasing)
    return out


def resize_mask(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resizes a bool mask ``(*spatial)`` to ``shape`` by nearest neighbour (no smoothing: a mask stays a mask).

    Example:
        >>> resize_mask(np.array([[True, False], [False, False]]), (4, 4)).astype(int)
        array([[1, 1, 0, 0],
               [1, 1, 0, 0],
               [0, 0, 0, 0],
               [0, 0, 0, 0]])
    """
    mask = np.asarray(mask, dtype=bool)
    shape = tuple(int(n) for n in shape)
    if len(shape) != mask.ndim:
        raise ValueError(f"target shape {shape} does not match the {mask.ndim} spatial axes of the mask {mask.shape}")
    if shape == mask.shape:
        return mask.copy()
    from skimage.transform import resize  # deferred: the spec (a config section) imports light

    return resize(mask, shape, order=0, mode="edge", preserve_range=True, anti_aliasing=False).astype(bool)


def match_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """Converts the last axis to ``channels``: 1 -> 3 replicates, 3 -> 1 is BT.601 luma.

    Raises:
        PreprocessError: any other conversion.
    """
    x = np.asarray(x, dtype=np.float32)
    have = x.shape[-1]
    if channels is None or have == channels:
        return x
    if have == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    if have == 3 and channels == 1:
        return (x @ np.asarray(LUMA_BT601, dtype=np.float32))[..., np.newaxis].astype(np.float32)
    raise PreprocessError(f"cannot convert an image with {have} channel(s) to the model's {channels}")


def scale_intensity(x: np.ndarray, scale: ScaleSpec, *, stored_range: tuple[float, float] | None = None) -> np.ndarray:
    """Scales intensities (see :class:`PreprocessSpec` ``scale``).

    Args:
        x: the values.
        scale: the mode.
        stored_range: ``(low, high)`` mapped to [0, 1] by ``"stored_range"`` (the
            image's ``meta["stored_range"]``; ``(0, 1)`` after a window).

    Raises:
        ValueError: an unknown mode.
        PreprocessError: per-channel mean/std of the wrong length for ``x``, or
            ``"stored_range"`` without a usable ``stored_range``.
    """
    x = np.asarray(x, dtype=np.float32)
    if scale is None:
        return x
    if isinstance(scale, str) and scale == "stored_range":
        if stored_range is None:
            raise PreprocessError(
                "scale 'stored_range' needs the range the file's storage can hold, and float data has none: "
                "use scale 'minmax', [low, high] or {mean, std} instead"
            )
        lo, hi = float(stored_range[0]), float(stored_range[1])
        if not (np.isfinite([lo, hi]).all() and hi > lo):
            raise PreprocessError(f"scale 'stored_range': unusable stored range {tuple(stored_range)!r}")
        return ((x.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    if isinstance(scale, (Mapping, ScaleStats)):  # ScaleStats is a Mapping at run time, not to mypy
        mean = np.asarray(scale["mean"], dtype=np.float64)
        std = np.asarray(scale["std"], dtype=np.float64)
        for name, value in (("mean", mean), ("std", std)):
            if value.ndim == 1 and value.size not in (1, x.shape[-1]):
                raise PreprocessError(f"scale {name} has {value.size} values for {x.shape[-1]} channel(s)")
        return ((x - mean) / std).astype(np.float32)
    if isinstance(scale, str):
        if scale != "minmax":
            raise ValueError(f"unknown scale mode {scale!r}")
        low, high = 0.0, 1.0
    else:
        low, high = float(scale[0]), float(scale[1])
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:  # a constant image has no range: map it to the low end
        return np.full(x.shape, low, dtype=np.float32)
    unit = (x.astype(np.float64) - lo) / (hi - lo)
    return (low + unit * (high - low)).astype(np.float32)


def apply_preset(x: np.ndarray, preset: str) -> np.ndarray:
    """``keras.applications.<preset>.preprocess_input`` in NumPy, for RGB values in [0, 255].

    The modes of ``keras.applications.imagenet_utils.preprocess_input``
    (https://keras.io/api/applications/), channels last: ``torch``: ``x / 255``,
    then minus :data:`IMAGENET_MEAN` and over :data:`IMAGENET_STD` per channel;
    ``tf``: ``x / 127.5 - 1``; ``caffe``: RGB -> BGR, then minus
    :data:`CAFFE_MEAN_BGR`; a family whose models rescale themselves (:data:`PRESETS`
    maps it to None) leaves ``x`` as it is.

    Args:
        x: float values, ``(..., C)``, RGB in [0, 255].
        preset: a key of :data:`PRESETS`.

    Raises:
        ValueError: an unknown preset.
        PreprocessError: ``torch``/``caffe`` on anything but 3 channels.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    mode = PRESETS[preset]
    x = np.array(x, dtype=np.float32)  # a copy: the caller's array is never changed
    if mode is None:
        return x
    if mode == "tf":
        return x / np.float32(127.5) - np.float32(1.0)
    if x.shape[-1] != 3:
        raise PreprocessError(
            f"preset {preset!r} (Keras mode {mode!r}) takes 3 channels (RGB), the image has {x.shape[-1]}"
        )
    if mode == "torch":
        return (x / np.float32(255.0) - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(
            IMAGENET_STD, dtype=np.float32
        )
    return x[..., ::-1] - np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)


def check_aspect_change(source: Sequence[int], target: Sequence[int]) -> None:
    """Refuses a resize of the in-plane (last two) axes whose shrink factors differ over MAX_ASPECT_CHANGE times.

    Raises:
        PreprocessError: e.g. a 32 x 64800 image for a 64 x 64 model.
    """
    factors = [s / t for s, t in zip(source[-2:], target[-2:])]
    change = max(factors) / min(factors) if min(factors) > 0 else float("inf")
    if change > MAX_ASPECT_CHANGE:
        raise PreprocessError(
            f"image is {' x '.join(map(str, source))}: resized to the model's {' x '.join(map(str, target))} one axis "
            f"would shrink {change:.0f} times more than the other (at most {MAX_ASPECT_CHANGE} is taken)"
        )
