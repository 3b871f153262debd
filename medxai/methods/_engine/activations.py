"""Activations of one layer and their gradients: what every activation-map (CAM) method reads.

One compiled ``tf.function`` returns, for a chunk of images and their targets, the
chosen layer's activations ``A`` and ``dY/dA``, where ``Y`` is the explained output
(:func:`~medxai.methods._engine.output.explained_output`: the logits by default,
found from the graph). The routine runs on a Keras model from the input to
``[layer output, explained output]`` built on the user's own variables, so it always
explains the model's current weights. Images are pushed through in chunks of
``batch_size``: memory is bounded by it, and each image's result does not depend on it.
A second, forward-only routine returns the activations alone (Score-CAM needs no gradients).
:meth:`ActivationEngine.placement` says where the layer's cells lie on the input
(:mod:`~medxai.methods._engine.geometry`): the matrices that upsample a map and the pixels the model sees.

The layer is found from the graph, never from ``model.layers[-1]``: walking back from
the explained output, the first layer whose output has spatial axes (rank 4 for 2D inputs,
rank 5 for 3D) is the default; ``layer="name"`` picks another. For a segmentation model
(a dense output) the head's own logits are skipped: the default is the last feature map
under the head (Seg-Grad-CAM, Vinogradova et al. 2020).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medxai.methods._engine import OUTPUT_LOGITS
from medxai.methods._engine.engine import TargetTensors, select, target_tensors
from medxai.methods._engine.geometry import feature_geometry, placement
from medxai.methods._engine.output import explained_output
from medxai.methods._engine.spec import OutputSpec
from medxai.methods._engine.targets import Targets


def _producer(tensor: Any) -> tuple[Any, list[Any]] | None:
    """The operation that made a symbolic tensor and that call's input tensors (None for graph inputs)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, list(node.input_tensors)


def spatial_layers(model: keras.Model, start: Any = None, skip: Any = None) -> list[tuple[str, Any]]:
    """Layers of the model's graph whose output has spatial axes, nearest the output first.

    Walks back (breadth first) from ``start`` (default: the model output) through the outer
    graph; a nested model counts as one layer (its output, in the outer graph), its own layers
    are not entered. The model's input is never a candidate, nor the tensor ``skip`` (a dense
    output's own logits: the explained score, not a feature map).

    Returns:
        ``(layer name, symbolic output tensor)`` pairs.
    """
    rank = len(model.inputs[0].shape)  # batch + spatial + channel
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    queue = deque([model.outputs[0] if start is None else start])
    while queue:
        tensor = queue.popleft()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        produced = _producer(tensor)
        if produced is None:
            continue
        operation, inputs = produced
        if isinstance(operation, keras.layers.InputLayer):
            continue
        if isinstance(operation, keras.layers.Layer) and len(tensor.shape) == rank and tensor is not skip:
            found.append((operation.name, tensor))
        queue.extend(inputs)
    return found


def _nested_owner(model: keras.Model, name: str) -> str | None:
    """The name of the nested model of ``model`` that holds a layer called ``name``, if any."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and (
            any(inner.name == name for inner in layer.layers) or _nested_owner(layer, name)
        ):
            return layer.name
    return None


def find_layer(model: keras.Model, layer: str | None = None, start: Any = None, skip: Any = None) -> tuple[str, Any]:
    """The layer whose activations are explained: ``layer`` or the last spatial layer of the graph.

    The graph is walked from ``start`` (the explained output; default the model output), so
    only layers the explained score depends on are candidates (see :func:`spatial_layers`).

    Raises:
        ValueError: naming ``layer`` and the candidate layers when there is no such layer,
            it has no spatial axes, or it sits inside a nested model.
    """
    spatial_rank = len(model.inputs[0].shape) - 2
    kind = {2: "2D (rank 4: batch, height, width, channels)", 3: "3D (rank 5: batch, depth, height, width, channels)"}
    wanted = kind.get(spatial_rank, f"{spatial_rank} spatial axes")
    candidates = spatial_layers(model, start, skip)
    names = ", ".join(n for n, _ in candidates) or "none"
    nested = [lay.name for lay in model.layers if isinstance(lay, keras.Model)]
    rebuild = (
        f"; its layers sit inside the nested model(s) {', '.join(map(repr, nested))}, which the outer graph "
        "cannot enter: call the inner model itself, or rebuild the model as one functional graph"
        if nested
        else ""
    )
    if layer is None:
        if not candidates:
            raise ValueError(
                f"layer: the model has no layer with {wanted} outputs between its input and its output, "
                "so there is no activation map to explain (activation-map methods need a convolutional "
                f"feature map; use a gradient method such as 'gradient' or 'integrated_gradients'){rebuild}"
            )
        return candidates[0]
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"layer must be a layer name or null (the last spatial layer), got {layer!r}")
    for name, tensor in candidates:
        if name == layer:
            return name, tensor
    owner = _nested_owner(model, layer)
    if owner is not None:
        usable = any(name == owner for name, _ in candidates)
        reason = (
            f"it is inside the nested model {owner!r}, whose inner layers cannot be reached from the outer "
            "graph; "
            + (f"use layer: {owner!r} (its output) or " if usable else "call the inner model itself, or ")
            + "rebuild the model as one functional graph"
        )
    elif layer in {lay.name for lay in model.layers}:
        reason = f"its output is not a {wanted} feature map on the way to the model output"
    else:
        reason = "the model has no such layer"
    raise ValueError(f"layer {layer!r} cannot be used: {reason} (layers with spatial outputs: {names})")


class ActivationEngine:
    """Batched, compiled activations and gradients of one layer for one explained output.

    Args:
        model: A built Keras model with one input and one output.
        layer: The layer name, or None for the last layer with spatial outputs.
        output: Which output is explained (see :func:`~medxai.methods._engine.output.explained_output`).
        jit: Compile with XLA.
        source: The model to build on (default ``model``); the half-precision copy of a
            :class:`~medxai.methods._engine.engine.GradientEngine` when precision is mixed.
    """

    def __init__(
        self,
        model: keras.Model,
        layer: str | None = None,
        output: str | OutputSpec = OUTPUT_LOGITS,
        jit: bool = False,
        source: keras.Model | None = None,
    ):
        source = model if source is None else source
        view = explained_output(source, output)
        explained = view.model.outputs[0]
        logits = view.head.logits if view.head is not None else None
        # walked from the logits: the view's own steps after them are no feature maps; a segmentation
        # model's logits are the explained score, not a feature map either (Seg-Grad-CAM reads the
        # last feature map under the head)
        start = explained if logits is None else logits
        self.layer, tensor = find_layer(source, layer, start, logits if len(explained.shape) > 2 else None)
        self.explained = view.description
        self.model = keras.Model(source.inputs[0], [tensor, view.model.outputs[0]], name=f"{source.name}_cam")
        self.features = keras.Model(source.inputs[0], tensor, name=f"{source.name}_features")
        self.jit = jit
        self._fn = tf.function(self._chunk, reduce_retracing=not jit, jit_compile=jit)
        self._forward_fn = tf.function(self._forward, reduce_retracing=not jit, jit_compile=jit)
        self._source, self._tensor = source, tensor
        self._placements: dict[tuple[int, ...], tuple[list[np.ndarray], np.ndarray]] = {}
        spatial = tuple(source.inputs[0].shape[1:-1])
        if all(s is not None for s in spatial):
            self.placement(spatial)  # a feature map that cannot be placed on the input is refused now

    def placement(self, spatial: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray]:
        """Where the layer's cells lie on inputs of this spatial shape: per axis the matrix that
        upsamples a map from the layer's grid, and the bool mask of the pixels the model sees
        (see :func:`~medxai.methods._engine.geometry.placement`).

        Raises:
            ValueError: naming the layer of unknown geometry that keeps the map from being placed.
        """
        spatial = tuple(int(s) for s in spatial)
        if spatial not in self._placements:
            geometry = feature_geometry(self._source, self._tensor, spatial)
            self._placements[spatial] = placement(geometry, spatial)
        return self._placements[spatial]

    @property
    def feature_shape(self) -> tuple[int | None, ...]:
        """The layer's output shape without the batch axis: ``(*spatial, K)``."""
        return tuple(self.model.outputs[0].shape[1:])

    def _chunk(self, images: tf.Tensor, targets: TargetTensors) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            activations, out = self.model(images, training=False)
            tape.watch(activations)
            selected = select(out, targets)
        gradients = tape.gradient(selected, activations)
        return tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32)

    def _forward(self, images: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.features(images, training=False), tf.float32)

    def activations(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The layer's activations ``(N, *spatial, K)`` float32: forward passes only, ``batch_size`` images per call."""
        parts = [
            self._forward_fn(tf.constant(images[start : start + batch_size])).numpy()
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def chunks(
        self, images: np.ndarray, targets: Targets, batch_size: int = 32
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start, A, dY/dA)`` per chunk of at most ``batch_size`` images, each ``(n, *spatial, K)`` float32.

        Args:
            images: ``(N, *spatial, C)`` float32, already checked.
            targets: The images' :class:`~medxai.methods._engine.targets.Targets`.
            batch_size: Images per model call (the memory bound).
        """
        for start in range(0, len(images), batch_size):
            activations, gradients = self._fn(
                tf.constant(images[start : start + batch_size]),
                target_tensors(targets[start : start + batch_size]),
            )
            yield start, activations.numpy(), gradients.numpy()
