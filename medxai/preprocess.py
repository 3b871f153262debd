"""Preprocessing: a :class:`~medxai.io.LoadedImage` -> exactly the tensor the model was trained on, and back.

``Preprocessor.__call__`` runs these steps, each also a public function (in
the manner of MONAI's named transforms):

1. finiteness check (NaN/inf -> :class:`PreprocessError`);
2. :func:`apply_window`, the DICOM VOI window (PS3.3 C.11.2);
3. inversion for MONOCHROME1 (:func:`invert_intensity`);
4. :func:`resize_spatial` to the model's spatial size;
5. :func:`match_channels` to the model's channel count;
6. :func:`scale_intensity` (``scale: stored_range`` maps the file's stored range,
   ``LoadedImage.meta["stored_range"]``, to [0, 1]);
7. with a ``preset``, the values are taken to [0, 255] and :func:`apply_preset` gives
   what ``keras.applications.<family>.preprocess_input`` gives.

:meth:`Preprocessor.to_source` takes a map at model geometry back to the
source image's geometry; :meth:`Preprocessor.display` gives the image as a
person would look at it, for overlays (no scale, no preset).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Union

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, field_serializer, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from medxai._validation import (
    Number,
    PositiveNumber,
    SpecMixin,
    did_you_mean,
    validation_error,
    int_tuple,
    int_where,
    is_number,
    is_word,
    any_number,
    number_or_numbers,
    positive_int,
    positive_number,
    with_library_message,
    show_value,
    sub_validate,
    library_errors,
)
from medxai.errors import PreprocessError

if TYPE_CHECKING:  # the image readers (pydicom, Pillow, nibabel) load only where images are read
    from medxai.io.image import LoadedImage

__all__ = [
    "CAFFE_MEAN_BGR",
    "Geometry",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "PreprocessError",
    "PreprocessSpec",
    "Preprocessor",
    "ScaleStats",
    "WindowSpec",
    "apply_preset",
    "apply_window",
    "check_finite",
    "invert_intensity",
    "match_channels",
    "resize_spatial",
    "scale_intensity",
    "LUMA_BT601",
]

#: ITU-R BT.601 luma weights for R, G, B.
LUMA_BT601 = (0.299, 0.587, 0.114)

#: ImageNet per-channel mean and std of RGB values in [0, 1] (Keras's ``torch`` mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ImageNet per-channel mean of BGR values in [0, 255] (Keras's ``caffe`` mode).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: ``preset`` -> the mode of ``keras.src.applications.imagenet_utils.preprocess_input`` that
#: ``keras.applications.<preset>.preprocess_input`` applies (Keras 3.15; see
#: https://keras.io/api/applications/): ``"torch"`` (x / 255, then ImageNet mean/std per channel),
#: ``"tf"`` (x / 127.5 - 1), ``"caffe"`` (RGB -> BGR, minus the ImageNet BGR mean, no scaling),
#: or None: the family's models rescale inside themselves and take [0, 255] as it is.
#: The modes themselves are presets too. Written out so the config imports no TensorFlow.
PRESETS: Mapping[str, str | None] = MappingProxyType(
    {
        "convnext": None,
        "densenet": "torch",
        "efficientnet": None,
        "efficientnet_v2": None,
        "inception_resnet_v2": "tf",
        "inception_v3": "tf",
        "mobilenet": "tf",
        "mobilenet_v2": "tf",
        "mobilenet_v3": None,
        "nasnet": "tf",
        "resnet": "caffe",
        "resnet50": "caffe",
        "resnet_v2": "tf",
        "vgg16": "caffe",
        "vgg19": "caffe",
        "xception": "tf",
        "caffe": "caffe",
        "tf": "tf",
        "torch": "torch",
    }
)
# The modes that work on each channel as R, G, B.
_RGB_MODES = ("torch", "caffe")
#: How much more the resize to the model's input may shrink one in-plane axis than the other.
#: Beyond it the model sees a smear, and the anti-aliasing filter's cost grows with the shrink
#: (a 1 KB JPEG declaring 32 x 64800 spent minutes there).
MAX_ASPECT_CHANGE = 32

# One schema for the library and the study config, whose ``preprocess:`` section is a
# PreprocessSpec: each check gives the config's message (the config names the key) and,
# built directly, the library's own as a ValueError (see medxai._validation). The config
# (validated with a context) reads only its YAML forms; direct construction also takes the
# Python forms it always took (a window as a (center, width) sequence, any channel count).
_SETTINGS = ConfigDict(extra="forbid")


def _in_config(info: ValidationInfo) -> bool:
    """Validated as part of a study config (which passes a context), not built directly."""
    return info.context is not None


class _Window(NamedTuple):
    center: float
    width: float


class WindowSpec(_Window):
    """An intensity window (e.g. CT Hounsfield units): ``center`` +/- ``width`` / 2.

    A named tuple ``(center, width)``, equal to the plain tuple; the config writes it
    as ``{center: .., width: ..}``.

    Raises:
        ValueError: a width that is not > 0, or values that are not finite numbers.
    """

    __slots__ = ()

    def __new__(cls, center: float, width: float) -> WindowSpec:
        if not (is_number(center) and is_number(width) and np.isfinite([center, width]).all() and width > 0):
            raise ValueError(f"window width must be > 0 and values finite, got {(center, width)!r}")
        return super().__new__(cls, float(center), float(width))


@dataclass(frozen=True, config=_SETTINGS)
class _WindowKeys:
    """The config's ``{center: .., width: ..}`` form of a :class:`WindowSpec`."""

    center: Number
    width: PositiveNumber


def _flat(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


@library_errors
@dataclass(frozen=True, config=_SETTINGS)
class ScaleStats(SpecMixin):
    """Standardisation ``(x - mean) / std``; each a number or one number per channel.

    Read like the mapping ``{"mean": .., "std": ..}`` (``stats["mean"]``, ``dict(stats)``).
    """

    mean: Annotated[
        float | tuple[float, ...],
        BeforeValidator(with_library_message(lambda v: number_or_numbers(_flat(v), any_number), lambda v: f"scale mean must be finite numbers, got {v!r}")),
    ]
    std: Annotated[
        float | tuple[float, ...],
        BeforeValidator(
            with_library_message(lambda v: number_or_numbers(_flat(v), positive_number), lambda v: f"scale std must be > 0 and values finite, got {v!r}")
        ),
    ]

    @model_validator(mode="after")
    def _same_length(self) -> ScaleStats:
        if isinstance(self.mean, tuple) and isinstance(self.std, tuple) and len(self.mean) != len(self.std):
            raise validation_error(f"mean and std have different lengths ({len(self.mean)} and {len(self.std)})")
        return self

    def __getitem__(self, key: str) -> Any:
        if key not in ("mean", "std"):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Any:
        return iter(("mean", "std"))

    def __len__(self) -> int:
        return 2

    def keys(self) -> tuple[str, str]:
        return ("mean", "std")


Mapping.register(ScaleStats)

_size = int_tuple("null or a list of 2 or 3 positive integers", (2, 3), lambda v: v > 0)
_channels = int_where("1, 3 or null", lambda v: v in (1, 3))


_SCALE_WORDS = ("minmax", "stored_range", "bit_depth", "none")
_SCALE_FORMS = "'minmax', 'stored_range', (low, high), {'mean': m, 'std': s} or None"


def _with_library(exc: PydanticCustomError, message: str) -> PydanticCustomError:
    return PydanticCustomError(exc.type, exc.message_template, {**(exc.context or {}), "library": message})


@library_errors
@dataclass(frozen=True, config=_SETTINGS)
class PreprocessSpec(SpecMixin):
    """How to turn an image into model input.

    Attributes:
        size: target spatial size (2 or 3 positive ints); None -> the model input's spatial shape.
        channels: target channel count; None -> the model input's.
        window: ``"auto"`` (the file's VOI window when it has one, else none),
            ``(center, width)`` (stored as a :class:`WindowSpec`), or None (no window).
        scale: ``"minmax"`` (per image to [0, 1], a constant image -> zeros),
            ``"stored_range"`` (alias ``"bit_depth"``: the range the file's storage can
            hold, ``LoadedImage.meta["stored_range"]``, linearly to [0, 1]: 8-bit / 255,
            16-bit / 65535, a 12-bit CT by its BitsStored through the rescale; float
            data has no stored range and is refused; after a window, whose values are
            already in [0, 1], it changes nothing; without a window an inverted
            (MONOCHROME1) image is inverted about the stored range, not the image's own),
            ``(low, high)`` (per image min-max to [low, high]),
            ``{"mean": m, "std": s}`` (``(x - m) / s``, floats or per-channel
            lists; stored as a :class:`ScaleStats`), or None (values as they are).
        preset: a ``keras.applications`` family whose ``preprocess_input`` the model was
            trained with (one of :data:`PRESETS`, e.g. ``"densenet"``, ``"resnet50"``,
            ``"efficientnet"``, or the plain modes ``"torch"``, ``"tf"``, ``"caffe"``), or
            None. The image is brought to [0, 1] by ``scale`` (which must then be
            ``"minmax"`` or ``"stored_range"``; the latter gives an 8-bit picture
            exactly the values Keras's pipeline gives it), times 255, then the family's
            mode is applied (:func:`apply_preset`); ``torch`` and ``caffe`` families
            need 3 channels. ``efficientnet``, ``efficientnet_v2``, ``convnext`` and
            ``mobilenet_v3`` models rescale inside themselves: they get [0, 255].

    Also the study config's ``preprocess:`` section (``medxai.pipeline.config.PreprocessSection``),
    where ``channels`` must be 1 or 3 and the window is written ``{center: .., width: ..}``.

    Raises:
        ValueError: a value of the wrong form, or a preset with a scale or channel
            count it cannot take, naming the setting.
    """

    size: tuple[int, ...] | None = Field(
        default=None, description="Spatial size (2 or 3 ints); None: the model's input size."
    )
    channels: int | None = Field(default=None, description="None: the model's input channels.")
    window: Literal["auto"] | WindowSpec | None = Field(
        default="auto", description="'auto' (from the file), {center, width}, or None (no windowing)."
    )
    scale: Literal["minmax", "stored_range"] | ScaleStats | tuple[float, float] | None = Field(
        default="minmax",
        description="'minmax' (per image to [0, 1]), 'stored_range' (alias 'bit_depth': the file's "
        "stored range, e.g. 0..255 for 8 bits, to [0, 1]), {mean, std}, [low, high] (per image "
        "min-max to [low, high]), or None (no scaling).",
    )
    preset: str | None = Field(
        default=None,
        description="A keras.applications family (densenet, resnet50, efficientnet, ...) or mode "
        "(torch, tf, caffe) whose preprocess_input the model expects; None: no preset.",
    )

    def spec_kwargs(self) -> dict[str, Any]:
        """The settings as plain values: the window as ``(center, width)``, mean/std as ``{"mean": .., "std": ..}``."""
        window = tuple(self.window) if isinstance(self.window, WindowSpec) else self.window
        scale = {"mean": self.scale.mean, "std": self.scale.std} if isinstance(self.scale, ScaleStats) else self.scale
        return {"size": self.size, "channels": self.channels, "window": window, "scale": scale, "preset": self.preset}

    @field_serializer("window")
    def _window_as_mapping(self, window: Any) -> Any:
        return {"center": window.center, "width": window.width} if isinstance(window, WindowSpec) else window

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> tuple[int, ...] | None:
        if value is None:
            return None
        return with_library_message(_size, lambda v: f"size must be 2 or 3 positive integers, got {v!r}")(_flat(value))

    @field_validator("channels", mode="before")
    @classmethod
    def _check_channels(cls, value: Any, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        if _in_config(info):
            return _channels(value)
        return with_library_message(positive_int, lambda v: f"channels must be a positive integer, got {v!r}")(value)

    @field_validator("window", mode="before")
    @classmethod
    def _check_window(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, WindowSpec):
            return value
        if is_word(value, "none"):
            return None
        if is_word(value, "auto"):
            return "auto"
        if isinstance(value, Mapping):
            try:
                keys = sub_validate(_WindowKeys, value, info)
            except PydanticCustomError as exc:
                raise _with_library(exc, f"window must be 'auto', None or (center, width), got {value!r}") from None
            return WindowSpec(keys.center, keys.width)
        library = f"window must be 'auto', None or (center, width), got {value!r}"
        if not _in_config(info) and not isinstance(value, str) and isinstance(value, (Sequence, np.ndarray)) and len(value) == 2:
            try:
                return WindowSpec(*value)
            except (TypeError, ValueError) as err:
                library = str(err)
        raise validation_error(f"expected 'auto', none or {{center: .., width: ..}}, got {show_value(value)}", library=library)

    @field_validator("scale", mode="before")
    @classmethod
    def _check_scale(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or is_word(value, "none"):
            return None
        if is_word(value, "minmax"):
            return "minmax"
        if is_word(value, "stored_range") or is_word(value, "bit_depth"):
            return "stored_range"
        if isinstance(value, (list, tuple, np.ndarray)):
            if len(value) == 2 and all(is_number(v) and np.isfinite(v) for v in value):
                low, high = float(value[0]), float(value[1])
                if low >= high:
                    raise validation_error(
                        f"expected [low, high] with low < high, got {show_value(_flat(value))}",
                        library=f"scale range must have low < high, got {value!r}",
                    )
                return (low, high)
            raise validation_error(
                f"expected [low, high] (two numbers), got {show_value(_flat(value))}",
                library=f"scale must be {_SCALE_FORMS}, got {value!r}",
            )
        if isinstance(value, (Mapping, ScaleStats)):
            if isinstance(value, ScaleStats):
                stats = value
            else:
                try:
                    stats = sub_validate(ScaleStats, value, info)
                except PydanticCustomError as exc:
                    library = (
                        f"scale std must be > 0 and values finite, got {dict(value)!r}"
                        if set(value) == {"mean", "std"}
                        else f"scale dict needs exactly the keys 'mean' and 'std', got {sorted(value)}"
                    )
                    raise _with_library(exc, library) from None
            channels = info.data.get("channels")
            problems = [
                ((key,), f"expected 1 or {channels} values (one per channel), got {len(v)}")
                for key in ("mean", "std")
                if isinstance(v := getattr(stats, key), tuple) and channels and len(v) not in (1, channels)
            ]
            if problems:
                raise validation_error(
                    "",
                    *problems,
                    library=f"scale mean/std need 1 or {channels} values (one per channel), got {dict(value)!r}",
                )
            return stats
        hint = did_you_mean(value.strip().lower() if isinstance(value, str) else None, _SCALE_WORDS)
        raise validation_error(
            f"expected 'minmax', 'stored_range', {{mean: .., std: ..}}, [low, high] or none, got {show_value(value)}{hint}",
            library=f"scale must be {_SCALE_FORMS}, got {value!r}{hint}",
        )

    @field_validator("preset", mode="before")
    @classmethod
    def _check_preset(cls, value: Any) -> str | None:
        if value is None or is_word(value, "none"):
            return None
        if isinstance(value, str) and value.strip().lower() in PRESETS:
            return value.strip().lower()
        hint = did_you_mean(value.strip().lower() if isinstance(value, str) else None, list(PRESETS))
        raise validation_error(
            f"expected one of {', '.join(PRESETS)} or none, got {show_value(value)}{hint}",
            library=f"preset must be one of {', '.join(PRESETS)} or None, got {value!r}{hint}",
        )

    @model_validator(mode="after")
    def _preset_fits(self) -> PreprocessSpec:
        """A preset takes RGB-like values in [0, 255]: ``scale`` must say how they get there."""
        if self.preset is None:
            return self
        problems, library = [], []
        if self.scale not in ("minmax", "stored_range"):
            scale = self.spec_kwargs()["scale"]
            problems.append((
                ("scale",),
                f"with preset {self.preset!r} scale must be 'minmax' or 'stored_range' (how the image "
                f"reaches 0..255 for the preset), got {show_value(scale)}",
            ))
            library.append(f"preset {self.preset!r} needs scale 'minmax' or 'stored_range', got {scale!r}")
        mode = PRESETS[self.preset]
        if mode in _RGB_MODES and self.channels is not None and self.channels != 3:
            problems.append((
                ("channels",),
                f"preset {self.preset!r} (Keras mode {mode!r}) takes 3 channels (RGB), got {self.channels}",
            ))
            library.append(f"preset {self.preset!r} (Keras mode {mode!r}) needs 3 channels, got {self.channels}")
        if problems:
            raise validation_error("", *problems, library="; ".join(library))
        return self


ScaleSpec = Union[str, tuple[float, float], Mapping, None]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What is needed to send a map back to the source image's geometry.

    Attributes:
        source_spatial_shape: the image's spatial shape, where maps are written.
        model_spatial_shape: the model input's spatial shape, where maps are computed.
        affine: the source's 4x4 RAS+ affine in array order (:mod:`medxai.io.geometry`),
            for maps at ``source_spatial_shape``; None when the image had none.
        patient_geometry: True when ``affine`` places the image in the patient.
    """

    source_spatial_shape: tuple[int, ...]
    model_spatial_shape: tuple[int, ...]
    affine: np.ndarray | None = dataclasses.field(default=None, compare=False)
    patient_geometry: bool = False


# ----------------------------------------------------------------- transforms


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


def invert_intensity(
    x: np.ndarray, *, windowed: bool, stored_range: tuple[float, float] | None = None
) -> np.ndarray:
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
    from skimage.transform import resize  # deferred: the spec (a config section) imports light

    if anti_aliasing is None:
        anti_aliasing = any(t < s for t, s in zip(shape, x.shape[:-1]))
    out = np.empty(shape + (x.shape[-1],), dtype=np.float32)
    for c in range(x.shape[-1]):
        out[..., c] = resize(
            x[..., c], shape, order=1, mode="edge", preserve_range=True, anti_aliasing=anti_aliasing
        )
    return out


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


def scale_intensity(
    x: np.ndarray, scale: ScaleSpec, *, stored_range: tuple[float, float] | None = None
) -> np.ndarray:
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
    if isinstance(scale, Mapping):
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
        return (x / np.float32(255.0) - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return x[..., ::-1] - np.float32(CAFFE_MEAN_BGR)


def _check_aspect_change(source: Sequence[int], target: Sequence[int]) -> None:
    """Refuses a resize of the in-plane (last two) axes whose shrink factors differ over :data:`MAX_ASPECT_CHANGE` times.

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


# --------------------------------------------------------------- preprocessor


class Preprocessor:
    """Turns images into model input (and maps back) for one model and one spec.

    Args:
        spec: the preprocessing settings.
        input_shape: the model's input shape without the batch axis, e.g.
            ``(64, 64, 1)`` or ``(16, 32, 32, 1)``; None entries are allowed
            (then ``spec.size``/``spec.channels`` give them, else the source's
            size/channels are kept).

    Raises:
        ValueError: the spec and the model input disagree (a ``torch``/``caffe`` preset
            for a model that does not take 3 channels included), or the model is not 2D/3D.
    """

    def __init__(self, spec: PreprocessSpec, input_shape: Sequence[int | None]) -> None:
        input_shape = tuple(None if n is None else int(n) for n in input_shape)
        if len(input_shape) not in (3, 4):
            raise ValueError(
                f"model input shape {input_shape} is not (H, W, C) or (D, H, W, C) (without the batch axis)"
            )
        self.spec = spec
        self.input_shape = input_shape
        model_spatial = input_shape[:-1]
        if spec.size is not None:
            if len(spec.size) != len(model_spatial):
                raise ValueError(f"size {spec.size} has {len(spec.size)} axes; the model takes {len(model_spatial)}")
            clash = [(s, m) for s, m in zip(spec.size, model_spatial) if m is not None and s != m]
            if clash:
                raise ValueError(f"size {spec.size} disagrees with the model's input shape {input_shape}")
            self.target_size: tuple[int | None, ...] = spec.size
        else:
            self.target_size = model_spatial
        model_channels = input_shape[-1]
        if spec.channels is not None and model_channels is not None and spec.channels != model_channels:
            raise ValueError(f"channels {spec.channels} disagrees with the model's input shape {input_shape}")
        self.channels: int | None = spec.channels if spec.channels is not None else model_channels
        if isinstance(spec.scale, Mapping) and self.channels is not None:
            for name in ("mean", "std"):
                n = np.atleast_1d(np.asarray(spec.scale[name])).size
                if n not in (1, self.channels):
                    raise ValueError(f"scale {name} has {n} values but the model takes {self.channels} channel(s)")
        mode = PRESETS.get(spec.preset) if spec.preset is not None else None
        if mode in _RGB_MODES and self.channels is not None and self.channels != 3:
            raise ValueError(
                f"preset {spec.preset!r} (Keras mode {mode!r}) takes 3 channels (RGB), "
                f"but the model takes {self.channels}"
            )

    @property
    def spatial_dims(self) -> int:
        """2 for a 2D model, 3 for a 3D model."""
        return len(self.input_shape) - 1

    def __call__(self, image: LoadedImage) -> tuple[np.ndarray, Geometry]:
        """Returns the model input, float32 ``(*model_spatial, C_model)``, and its geometry.

        Raises:
            PreprocessError: NaN/inf values, dims or channels the model cannot take, a
                resize that would squeeze one in-plane axis over :data:`MAX_ASPECT_CHANGE`
                times more than the other, or ``scale: stored_range`` for an unwindowed
                image without a stored range.
        """
        source = self._spatial(image).shape[:-1]
        target = tuple(s if t is None else t for t, s in zip(self.target_size, source))
        _check_aspect_change(source, target)
        stored = self._stored_range(image) if self.spec.scale == "stored_range" else None
        x, windowed = self._window_and_invert(image, stored)
        x = resize_spatial(x, target)
        x = match_channels(x, self.channels)
        # Windowed values are in [0, 1] already: their "stored range" is (0, 1).
        x = scale_intensity(x, self.spec.scale, stored_range=(0.0, 1.0) if windowed else stored)
        if self.spec.preset is not None:
            x = apply_preset(x * np.float32(255.0), self.spec.preset)
        affine = getattr(image, "affine", None)
        if affine is not None and len(source) < np.asarray(image.array).ndim - 1:
            # a single-frame volume read as a 2D image: its slice axis becomes the normal column
            affine = np.asarray(affine)[:, [1, 2, 0, 3]]
        return np.ascontiguousarray(x, dtype=np.float32), Geometry(
            source_spatial_shape=tuple(int(n) for n in source),
            model_spatial_shape=target,
            affine=affine,
            patient_geometry=bool(getattr(image, "patient_geometry", False)),
        )

    def display(self, image: LoadedImage) -> np.ndarray:
        """The image as a person sees it, float32 in [0, 1] at source geometry, ``(*spatial, 1|3)``.

        Windowed (same rule as ``__call__``) and inverted for MONOCHROME1;
        without a window, min-max scaled.
        """
        x, windowed = self._window_and_invert(image)
        if x.shape[-1] not in (1, 3):
            raise PreprocessError(f"cannot display an image with {x.shape[-1]} channels")
        if not windowed:
            x = scale_intensity(x, "minmax")
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def to_source(self, heatmap: np.ndarray, geometry: Geometry) -> np.ndarray:
        """Resamples a ``(*model_spatial)`` map to ``(*source_spatial)``; linear, clipped to [0, 1].

        A trailing channel axis of size 1 is accepted and dropped.

        Raises:
            ValueError: the map's shape is not the geometry's model shape, or it is not finite.
        """
        h = np.asarray(heatmap, dtype=np.float32)
        model = tuple(geometry.model_spatial_shape)
        if h.shape == model + (1,):
            h = h[..., 0]
        if h.shape != model:
            raise ValueError(f"map shape {h.shape} is not the model's spatial shape {model}")
        if not np.isfinite(h).all():
            raise ValueError("map contains NaN or infinite values")
        # Plain linear interpolation: no smoothing, so a peak keeps its value where it can.
        out = resize_spatial(h[..., np.newaxis], geometry.source_spatial_shape, anti_aliasing=False)[..., 0]
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ steps

    def _spatial(self, image: LoadedImage) -> np.ndarray:
        x = np.asarray(image.array)
        if x.ndim not in (3, 4):
            raise PreprocessError(f"image array has shape {x.shape}; expected (H, W, C) or (D, H, W, C)")
        dims = x.ndim - 1
        if dims == 3 and self.spatial_dims == 2 and x.shape[0] == 1:
            return x[0]  # a single-frame volume is a 2D image
        if dims != self.spatial_dims:
            shape = "x".join(map(str, x.shape[:-1]))
            raise PreprocessError(
                f"image is {dims}D ({shape}) but the model takes {self.spatial_dims}D input {self.input_shape}"
            )
        return x

    def _window(self, image: LoadedImage) -> tuple[float, float] | None:
        if isinstance(self.spec.window, str):  # "auto"
            if image.window is not None and not (np.isfinite(image.window).all() and image.window[1] > 0):
                raise PreprocessError(f"the image's window {image.window} is unusable (width must be > 0)")
            return image.window
        return self.spec.window  # type: ignore[return-value]

    def _stored_range(self, image: LoadedImage) -> tuple[float, float] | None:
        """The image's stored range for ``scale: stored_range``; None (not needed) when it is windowed."""
        if self._window(image) is not None:
            return None
        meta = image.meta or {}
        stored = meta.get("stored_range")
        if stored is None:
            if "stored_range" in meta:
                what = f"float data ({meta['dtype']})" if meta.get("dtype") else "float data"
                what += ", which has no stored range"
            else:
                what = "no meta['stored_range'] (an image not made by medxai's readers)"
            raise PreprocessError(
                f"scale 'stored_range' needs the range the file's storage can hold, but {image.source_path} "
                f"has {what}: use scale 'minmax', [low, high] or {{mean, std}}, or a window, instead"
            )
        return (float(stored[0]), float(stored[1]))

    def _window_and_invert(
        self, image: LoadedImage, stored_range: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, bool]:
        x = self._spatial(image)
        check_finite(x)
        x = np.asarray(x, dtype=np.float32)
        window = self._window(image)
        if window is not None:
            x = apply_window(x, *window)
        if image.invert:
            x = invert_intensity(x, windowed=window is not None, stored_range=stored_range)
        return x, window is not None
