"""The preprocessing settings: :class:`PreprocessSpec` (with :class:`WindowSpec` and
:class:`ScaleStats`), one schema for the library and the study config's ``preprocess:``
section, and the Keras ``preset`` table it checks against (:data:`PRESETS`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from medxai._validation import (
    Number,
    PositiveNumber,
    SpecMixin,
    any_number,
    did_you_mean,
    int_tuple,
    int_where,
    is_number,
    is_word,
    library_errors,
    number_or_numbers,
    positive_int,
    positive_number,
    show_value,
    sub_validate,
    validation_error,
)

__all__ = ["PRESETS", "RGB_MODES", "PreprocessSpec", "ScaleStats", "WindowSpec"]


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
#: The modes that work on each channel as R, G, B.
RGB_MODES = ("torch", "caffe")


# One schema for the library and the study config, whose ``preprocess:`` section is a
# PreprocessSpec: each check has one message, after the config's dotted key
# (``preprocess.size: ...``) or, built directly (a ValueError), after the field's name
# (``size: ...``; see medxai._validation). The config
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
        BeforeValidator(lambda v: number_or_numbers(_flat(v), any_number)),
    ]
    std: Annotated[
        float | tuple[float, ...],
        BeforeValidator(lambda v: number_or_numbers(_flat(v), positive_number)),
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
        return _size(_flat(value))

    @field_validator("channels", mode="before")
    @classmethod
    def _check_channels(cls, value: Any, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        if _in_config(info):
            return _channels(value)
        return positive_int(value)

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
            keys = sub_validate(_WindowKeys, value, info)
            return WindowSpec(keys.center, keys.width)
        if _in_config(info):  # the config writes a window as a mapping only
            raise validation_error(f"expected 'auto', none or {{center: .., width: ..}}, got {show_value(value)}")
        if not isinstance(value, str) and isinstance(value, (Sequence, np.ndarray)) and len(value) == 2:
            try:
                return WindowSpec(*value)
            except (TypeError, ValueError):
                raise validation_error(
                    f"expected (center, width), finite numbers with width > 0, got {show_value(_flat(value))}"
                ) from None
        raise validation_error(
            f"expected 'auto', none, (center, width) or {{center: .., width: ..}}, got {show_value(_flat(value))}"
        )

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
                    raise validation_error(f"expected [low, high] with low < high, got {show_value(_flat(value))}")
                return (low, high)
            raise validation_error(f"expected [low, high] (two numbers), got {show_value(_flat(value))}")
        if isinstance(value, (Mapping, ScaleStats)):
            stats = value if isinstance(value, ScaleStats) else sub_validate(ScaleStats, value, info)
            channels = info.data.get("channels")
            problems = [
                ((key,), f"expected 1 or {channels} values (one per channel), got {len(v)}")
                for key in ("mean", "std")
                if isinstance(v := getattr(stats, key), tuple) and channels and len(v) not in (1, channels)
            ]
            if problems:
                raise validation_error("", *problems)
            return stats
        hint = did_you_mean(value.strip().lower() if isinstance(value, str) else None, _SCALE_WORDS)
        raise validation_error(
            f"expected 'minmax', 'stored_range', {{mean: .., std: ..}}, [low, high] or none, got "
            f"{show_value(value)}{hint}"
        )

    @field_validator("preset", mode="before")
    @classmethod
    def _check_preset(cls, value: Any) -> str | None:
        if value is None or is_word(value, "none"):
            return None
        if isinstance(value, str) and value.strip().lower() in PRESETS:
            return value.strip().lower()
        hint = did_you_mean(value.strip().lower() if isinstance(value, str) else None, list(PRESETS))
        raise validation_error(f"expected one of {', '.join(PRESETS)} or none, got {show_value(value)}{hint}")

    @model_validator(mode="after")
    def _preset_fits(self) -> PreprocessSpec:
        """A preset takes RGB-like values in [0, 255]: ``scale`` must say how they get there."""
        if self.preset is None:
            return self
        problems = []
        if self.scale not in ("minmax", "stored_range"):
            scale = self.spec_kwargs()["scale"]
            problems.append(
                (
                    ("scale",),
                    f"with preset {self.preset!r} scale must be 'minmax' or 'stored_range' (how the image "
                    f"reaches 0..255 for the preset), got {show_value(scale)}",
                )
            )
        mode = PRESETS[self.preset]
        if mode in RGB_MODES and self.channels is not None and self.channels != 3:
            problems.append(
                (
                    ("channels",),
                    f"preset {self.preset!r} (Keras mode {mode!r}) takes 3 channels (RGB), got {self.channels}",
                )
            )
        if problems:
            raise validation_error("", *problems)
        return self
