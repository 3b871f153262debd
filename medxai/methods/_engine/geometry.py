"""Where a feature map's cells lie on the model input: the spatial correspondence of a CAM.

An activation map lives on the grid of one layer; to draw it over the input, medxai walks
the graph from the model input to that layer and follows, per spatial axis, where each
cell of every tensor on the way lies on the input. For one axis of a tensor with ``n``
cells the position is affine (pixel ``i`` of the input is the interval ``[i, i + 1)``):

* cell ``j`` stands for the input interval ``[offset + stride j, offset + stride (j + 1))``,
  centred on the cell's receptive field (so its centre is the receptive-field centre);
* ``seen`` is the input interval that reaches the tensor at all: a crop removes the rest,
  a padding adds cells that come from no input pixel.

Layers with a known geometry: convolutions and pooling (kernel, stride, dilation, ``valid``
or ``same`` padding as TensorFlow pads), ``Cropping``, ``ZeroPadding``, ``CenterCrop``
(cropping), ``Resizing`` and ``UpSampling`` (half-pixel-centred scaling), layers that act
on each cell alone (activations, normalisation, dropout, ``Dense`` on the channels, merges
of branches that agree), and nested models (walked through). Any other layer (``Lambda``,
``Reshape``, a custom layer, a crop to an aspect ratio, ...) is taken to stretch its input
over its output, as if it were a resize; a geometry that rests on such a guess is used only
when it is the plain one (see below), and is otherwise refused with a ValueError naming
the layer.

:func:`placement` turns the geometry into one matrix per axis that upsamples a map from the
layer's grid to the input (linear between cell centres, edge values held) and a mask of the
pixels the model sees: a CAM is that upsampled map inside the mask and 0 outside.

When the grid covers the whole input to within half a cell at each edge, the map is drawn
as the plain stretch of the whole map over the whole input (the linear resize every CAM
library uses), even where the receptive-field centres sit a fraction of a cell off:
TensorFlow's asymmetric 'same' padding and 1x1 convolutions of stride 2 put them up to half
a cell away (MobileNetV2 and EfficientNetB0 +15.5 pixels at stride 32, ResNet50 -15.5), a
property of every such model, not a region the model does not see. Crops, 'valid'
convolutions that shrink the grid (InceptionV3's stem: +21.5) and large paddings move it
further and are followed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np

#: Layers that act on every cell alone (or mix channels, never positions) at inference.
_CELL_WISE = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.Rescaling,
    keras.layers.Normalization,
    keras.layers.Dense,
    keras.layers.Identity,
    keras.layers.ActivityRegularization,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)
_CONV = (
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)
_POOL = (
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)
_TRANSPOSED = (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


@dataclass(frozen=True)
class Axis:
    """Where the cells of one spatial axis of a tensor lie on the same axis of the model input.

    Attributes:
        size: Cells on the axis.
        offset: Cell ``j`` stands for the input interval ``[offset + stride j, offset + stride (j + 1))``.
        stride: Input pixels per cell.
        field: Width of one cell's receptive field, in input pixels.
        seen: ``(lo, hi)``: the input interval that reaches the tensor.
    """

    size: int
    offset: float
    stride: float
    field: float
    seen: tuple[float, float]

    def field_of(self, first: int, last: int) -> tuple[float, float]:
        """The input interval that cells ``first .. last`` read, within ``seen``."""
        start = self.offset + self.stride * (first + 0.5) - self.field / 2
        end = self.offset + self.stride * (last + 0.5) + self.field / 2
        return max(self.seen[0], start), min(self.seen[1], end)

    def window(self, kernel: int, stride: int, before: int, size: int) -> Axis:
        """After a sliding window of ``kernel`` cells (dilation included), ``stride``, ``before`` cells of padding."""
        centre = self.offset + self.stride * (-before + (kernel - 1) / 2 + 0.5)  # of output cell 0
        first, last = max(0, -before), min(self.size - 1, (size - 1) * stride - before + kernel - 1)
        return Axis(
            size,
            centre - self.stride * stride / 2,
            self.stride * stride,
            self.field + self.stride * (kernel - 1),
            self.field_of(first, last),
        )

    def crop(self, before: int, after: int) -> Axis:
        """After removing ``before`` and ``after`` cells (negative: padding)."""
        size = self.size - before - after
        seen = (
            self.field_of(max(0, before), min(self.size, self.size - after) - 1)
            if before > 0 or after > 0
            else self.seen
        )
        return replace(self, size=size, offset=self.offset + self.stride * before, seen=seen)

    def scale(self, size: int) -> Axis:
        """After a half-pixel-centred resize to ``size`` cells (the grid's edges stay where they were)."""
        return replace(self, size=size, stride=self.stride * self.size / size)

    def plain(self, length: int) -> bool:
        """Whether this is the whole input of ``length`` pixels stretched over the axis (to within half a cell)."""
        tolerance = self.stride / 2 + 1e-9
        return (
            self.seen == (0.0, float(length))
            and abs(self.offset) <= tolerance
            and abs(self.offset + self.stride * self.size - length) <= tolerance
        )


@dataclass(frozen=True)
class Geometry:
    """One :class:`Axis` per spatial axis, and the first layer whose geometry was guessed (None: none was)."""

    axes: tuple[Axis, ...]
    guessed: str | None = None


def _pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    """Keras' ``cropping``/``padding`` argument as ``(before, after)`` per spatial axis."""
    if isinstance(value, int):
        return [(value, value)] * rank
    return [(v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in value]


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    """A per-axis Keras argument (one int for every axis, or one per axis) as a tuple."""
    return (int(value),) * rank if isinstance(value, int) else tuple(int(v) for v in value)


def _windowed(
    geometry: Geometry, kernel: Sequence[int], strides: Sequence[int], dilation: Sequence[int], padding: str
) -> Geometry:
    """After a convolution or pooling window on every spatial axis."""
    axes = []
    for axis, k, s, d in zip(geometry.axes, kernel, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "same":  # TensorFlow's: the odd cell of padding goes after
            size = -(-axis.size // s)
            before = max((size - 1) * s + span - axis.size, 0) // 2
        else:
            size, before = (axis.size - span) // s + 1, 0
        axes.append(axis.window(span, s, before, size))
    return replace(geometry, axes=tuple(axes))


def _step(layer: Any, inputs: list[Geometry], output_shape: Sequence[int | None]) -> Geometry:
    """The geometry of ``layer``'s output from its inputs' (``output_shape``: its spatial sizes, None if unknown)."""
    first = inputs[0]
    rank = len(output_shape)
    if len(first.axes) != rank or getattr(layer, "data_format", "channels_last") != "channels_last":
        return _guess(layer, first, output_shape)
    if isinstance(layer, _CONV) and layer.padding in ("valid", "same"):
        kernel, strides = _tuple(layer.kernel_size, rank), _tuple(layer.strides, rank)
        return _windowed(first, kernel, strides, _tuple(layer.dilation_rate, rank), layer.padding)
    if isinstance(layer, _POOL) and layer.padding in ("valid", "same"):
        return _windowed(first, _tuple(layer.pool_size, rank), _tuple(layer.strides, rank), (1,) * rank, layer.padding)
    if isinstance(layer, (keras.layers.Cropping2D, keras.layers.Cropping3D)):
        crops = _pairs(layer.cropping, rank)
        return replace(first, axes=tuple(a.crop(b, e) for a, (b, e) in zip(first.axes, crops)))
    if isinstance(layer, (keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)):
        pads = _pairs(layer.padding, rank)
        return replace(first, axes=tuple(a.crop(-b, -e) for a, (b, e) in zip(first.axes, pads)))
    if isinstance(layer, keras.layers.CenterCrop) and rank == 2:
        height, width = first.axes[0].size - layer.height, first.axes[1].size - layer.width
        if height >= 0 and width >= 0:  # Keras crops from diff // 2; a smaller input is resized instead
            crops = [(height // 2, height - height // 2), (width // 2, width - width // 2)]
            return replace(first, axes=tuple(a.crop(b, e) for a, (b, e) in zip(first.axes, crops)))
    if isinstance(layer, (keras.layers.UpSampling2D, keras.layers.UpSampling3D)):
        return replace(first, axes=tuple(a.scale(a.size * u) for a, u in zip(first.axes, _tuple(layer.size, rank))))
    if isinstance(layer, keras.layers.Resizing) and not (layer.crop_to_aspect_ratio or layer.pad_to_aspect_ratio):
        return replace(first, axes=tuple(a.scale(s) for a, s in zip(first.axes, (layer.height, layer.width))))
    if isinstance(layer, _CELL_WISE) or (isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, rank + 1)):
        # inputs without the output's grid (a squeeze-and-excitation gate of 1 x 1 cells) are broadcast over it
        spatial = [g for g in inputs if tuple(a.size for a in g.axes) == tuple(output_shape)]
        merged = _merge(spatial) if spatial else None
        if merged is not None:
            return merged
    return _guess(layer, first, output_shape)


def _merge(inputs: list[Geometry]) -> Geometry | None:
    """The geometry of a cell-wise merge of branches: theirs when they agree, None when they do not.

    Branches agree when they have the same cells, stride and seen interval and their offsets
    differ by at most half a cell (e.g. a 1x1 and a 3x3 'same' convolution of stride 2, whose
    receptive-field centres are half an input pixel apart): the offsets are averaged.
    """
    axes = []
    for column in zip(*(g.axes for g in inputs)):
        a = column[0]
        offsets = [b.offset for b in column]
        same_grid = all((b.size, b.stride, b.seen) == (a.size, a.stride, a.seen) for b in column)
        if not same_grid or max(offsets) - min(offsets) > a.stride / 2:
            return None
        axes.append(replace(a, offset=sum(offsets) / len(offsets), field=max(b.field for b in column)))
    return Geometry(tuple(axes), next((g.guessed for g in inputs if g.guessed), None))


def _guess(layer: Any, first: Geometry, output_shape: Sequence[int | None]) -> Geometry:
    """A layer of unknown geometry: its input stretched over its output, and the layer named as a guess.

    Without a grid to stretch (the input or the output has other axes, or the output's size is
    unknown) the result has no axes: a tensor that cannot be placed (fine on a side branch that
    is broadcast later, refused if the feature map depends on it).
    """
    if len(first.axes) != len(output_shape) or any(s is None for s in output_shape):
        return Geometry((), first.guessed or layer.name)
    axes = tuple(a.scale(int(s)) for a, s in zip(first.axes, output_shape) if s is not None)
    return Geometry(axes, first.guessed or layer.name)


def _spatial(tensor: Any) -> tuple[int | None, ...]:
    return tuple(tensor.shape[1:-1])


def _output_sizes(
    layer: Any, tensors: list[Any], inputs: list[Geometry], static: tuple[int | None, ...]
) -> tuple[int | None, ...]:
    """The spatial sizes of ``layer``'s output: the static ones, or (variable-size inputs) what the layer
    says for inputs of the sizes walked so far (None where it cannot say)."""
    if all(s is not None for s in static):
        return static
    shapes = [(None, *(a.size for a in g.axes), t.shape[-1]) for t, g in zip(tensors, inputs)]
    try:
        shape = layer.compute_output_shape(shapes[0] if len(shapes) == 1 else shapes)
        return tuple(None if s is None else int(s) for s in shape[1:-1])
    except Exception:  # a layer that cannot say: its size stays unknown (a known geometry does not need it)
        return static


def receptive_geometry(model: keras.Model, tensor: Any, spatial: Sequence[int]) -> Geometry:
    """Where the cells of ``tensor`` (a symbolic tensor of ``model``'s graph) lie on inputs of this spatial shape,
    as the layers say (receptive-field centres; guesses named in ``guessed``)."""
    start = Geometry(tuple(Axis(int(s), 0.0, 1.0, 1.0, (0.0, float(s))) for s in spatial))
    return _walk(tensor, {id(model.inputs[0]): start}, {})


def feature_geometry(model: keras.Model, tensor: Any, spatial: Sequence[int]) -> Geometry:
    """The geometry a CAM of ``tensor`` is drawn with: :func:`receptive_geometry`, or the plain stretch
    when that is within half a cell of it (see the module docstring).

    Raises:
        ValueError: naming the layer, when a layer of unknown geometry makes the result
            anything but the plain whole-input-to-whole-map stretch (or its size cannot be told).
    """
    geometry = receptive_geometry(model, tensor, spatial)
    if len(geometry.axes) == len(spatial) and all(a.plain(int(s)) for a, s in zip(geometry.axes, spatial)):
        # the whole input over the whole map, to within half a cell: the plain stretch
        axes = tuple(Axis(a.size, 0.0, s / a.size, a.field, (0.0, float(s))) for a, s in zip(geometry.axes, spatial))
        return Geometry(axes, geometry.guessed)
    if geometry.guessed is not None:
        raise ValueError(
            f"layer: cannot tell where the cells of the feature map lie on the input: layer "
            f"{geometry.guessed!r} on the way from the input has no known geometry, and the layers around it "
            "crop, pad or shift the grid; choose a layer before it with layer: <name>, or use a gradient method"
        )
    return geometry


def _walk(tensor: Any, known: dict[int, Geometry], memo: dict[int, Geometry]) -> Geometry:
    """The geometry of ``tensor``, walking back to the tensors whose geometry is ``known`` (no recursion per
    layer: deep models have paths of hundreds of layers)."""
    stack = [tensor]
    while stack:
        current = stack[-1]
        if id(current) in known or id(current) in memo:
            stack.pop()
            continue
        history = getattr(current, "_keras_history", None)
        node = None if history is None else history.operation._inbound_nodes[history.node_index]
        if node is None or not node.input_tensors:
            raise ValueError("layer: the feature map does not come from the model's (first) input")
        pending = [t for t in node.input_tensors if id(t) not in known and id(t) not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        inputs = [known[id(t)] if id(t) in known else memo[id(t)] for t in node.input_tensors]
        memo[id(current)] = _layer_geometry(history, node, current, inputs)
    return known[id(tensor)] if id(tensor) in known else memo[id(tensor)]


def _layer_geometry(history: Any, node: Any, tensor: Any, inputs: list[Geometry]) -> Geometry:
    """The geometry of the output ``tensor`` of one layer call (a nested model is walked through)."""
    layer = history.operation
    if isinstance(layer, keras.Model) and len(layer.inputs) == len(inputs):
        geometry = _walk(layer.outputs[history.tensor_index], {id(t): g for t, g in zip(layer.inputs, inputs)}, {})
    else:
        geometry = _step(layer, inputs, _output_sizes(layer, node.input_tensors, inputs, _spatial(tensor)))
    sizes = _spatial(tensor)
    if any(s is not None and s != a.size for s, a in zip(sizes, geometry.axes)):
        geometry = _guess(layer, inputs[0], sizes)  # the output is not what the known geometry says: guess
    return geometry


def placement(geometry: Geometry, spatial: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per axis, the ``(spatial[a], size)`` float64 matrix that upsamples a map from the layer's grid to the input,
    and the ``spatial``-shaped bool mask of the pixels the model sees.

    Pixel ``i`` (centre ``i + 0.5``) takes the linear interpolation of the cell centres around
    ``(i + 0.5 - offset) / stride - 0.5`` (in cells; the edge values held beyond the first and
    last centre); pixels outside ``seen`` take the value of the nearest seen pixel, so the
    matrix rows stay interpolation weights everywhere and the mask says where they mean something.
    With the plain geometry this is the half-pixel-centred linear resize of
    :func:`~medxai.preprocess.resize_spatial` (without its anti-aliasing when the map is finer than the input).
    """
    matrices, seen = [], []
    for axis, length in zip(geometry.axes, spatial):
        lo, hi = max(0, math.ceil(axis.seen[0] - 0.5)), min(int(length), math.ceil(axis.seen[1] - 0.5))
        pixels = np.arange(int(length))
        seen.append((pixels >= lo) & (pixels < hi))
        centre = np.clip(pixels, lo, max(lo, hi - 1)) + 0.5
        t = np.clip((centre - axis.offset) / axis.stride - 0.5, 0.0, axis.size - 1.0)
        below = np.floor(t).astype(np.int64)
        above = np.minimum(below + 1, axis.size - 1)
        fraction = t - below
        matrix = np.zeros((int(length), axis.size))
        np.add.at(matrix, (pixels, below), 1.0 - fraction)
        np.add.at(matrix, (pixels, above), fraction)
        matrices.append(matrix)
    mask = seen[0]
    for inside in seen[1:]:
        mask = mask[..., None] & inside
    return matrices, mask


def upsample(maps: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, *grid)`` maps through one matrix per spatial axis: ``(n, *spatial)``."""
    out = np.asarray(maps, dtype=np.float64)
    for matrix in matrices:  # contract the first spatial axis; the new one goes to the end
        out = np.tensordot(out, matrix.T, axes=([1], [0]))
    return out
