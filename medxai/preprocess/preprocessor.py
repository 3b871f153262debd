""":class:`Preprocessor`: a :class:`~medxai.io.LoadedImage` -> the model's input, and maps back to the source.

Its steps are :mod:`medxai.preprocess.transforms`; its settings :class:`~medxai.preprocess.spec.PreprocessSpec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from medxai.errors import PreprocessError
from medxai.preprocess.spec import PRESETS, RGB_MODES, PreprocessSpec
from medxai.preprocess.transforms import (
    apply_preset,
    apply_window,
    check_aspect_change,
    check_finite,
    invert_intensity,
    match_channels,
    resize_mask,
    resize_spatial,
    scale_intensity,
)

if TYPE_CHECKING:  # the image readers (pydicom, Pillow, nibabel) load only where images are read
    from medxai.io.image import LoadedImage

__all__ = ["Geometry", "Preprocessor"]


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
        if mode in RGB_MODES and self.channels is not None and self.channels != 3:
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
        check_aspect_change(source, target)
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

    def region_mask(self, image: LoadedImage, grid: Sequence[int]) -> np.ndarray:
        """A mask image (non-zero inside) resampled to the model's output ``grid``, nearest neighbour.

        The mask covers the image's extent, as the model input does: it is resampled the
        way the image is resized to the model's input, whatever its own size.

        Raises:
            PreprocessError: a mask of other dimensions than the model's.
        """
        mask = self._spatial(image)
        return resize_mask(np.any(mask != 0, axis=-1), grid)

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
