"""Which output of a Keras model is explained: logits, probabilities or a named layer.

Softmax and sigmoid saturate, so gradients of probabilities vanish exactly where a
model is confident. medxai explains the pre-activation (logits) by default, found
from the model's graph rather than from ``model.layers[-1]`` (a flag that silently
does nothing is xplique's ``output_layer`` defect):

* the output tensor is followed back to the operation that produced it, through
  nested models (a ``Sequential`` or functional head);
* a softmax/sigmoid is recognised however it is spelled: a ``Softmax`` layer, an
  ``Activation``, a Dense/Conv ``activation`` (``"softmax"``, ``tf.nn.softmax``
  whose name is ``softmax_v2``, ``keras.activations.sigmoid`` ...) or
  ``keras.ops.softmax``/``keras.ops.sigmoid`` applied in a functional graph;
* the view shares the user's variables (no weight copies), so it always explains
  the model's current weights;
* where the pre-activation cannot be reached (a ``Lambda``, a SavedModel's
  ``TFSMLayer``, an unknown layer or activation function), the model is probed:
  outputs that look like probabilities (every value in [0, 1]) are refused with
  an error that says what to do, never explained as if they were logits.

A binary model with one sigmoid output unit is read as two classes: class 1 is
the unit (its logit ``z``, or ``p`` with ``output: probabilities``) and class 0
its opposite (``-z``, the logit of ``1 - p``; or ``1 - p``), so ordinary 0/1
labels and ``predicted`` mean what they say. A one-unit model without a sigmoid
(a single score) keeps class 0 = the score.

What was explained is recorded in :attr:`ExplainedOutput.description`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from medxai.errors import OutputSelectionError
from medxai.methods._engine import OUTPUT_LOGITS, OUTPUT_PROBABILITIES

#: Activation names that squash logits (``*_v2`` are TensorFlow's spellings).
SQUASHING = {
    "softmax": "softmax",
    "softmax_v2": "softmax",
    "sigmoid": "sigmoid",
    "log_softmax": "log_softmax",
    "log_softmax_v2": "log_softmax",
    "hard_sigmoid": "hard_sigmoid",
}
#: Activations whose output is still a logit-like score (no squashing to [0, 1]).
_NOT_SQUASHING = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "tanh", "mish",
    "softplus", "softsign", "celu", "glu", "exponential", "identity",
}
_PROBE_IMAGES = 8
_SIGMOIDS = ("sigmoid", "hard_sigmoid")


@dataclass(frozen=True)
class ExplainedOutput:
    """The model whose output is explained, and what that output is.

    Attributes:
        model: A Keras model from the user's input to ``(N, n_outputs)``, sharing
            the user's variables.
        requested: What was asked: ``"logits"``, ``"probabilities"`` or a layer name.
        description: What is explained, in words (recorded in ``run.json`` and the index).
        removed: The activation removed to reach the logits (``"softmax"``,
            ``"sigmoid"``, ...), or None.
    """

    model: keras.Model
    requested: str
    description: str
    removed: str | None = None


class _Linear:
    """A stand-in for a layer that reads every attribute from it except ``activation`` (the identity)."""

    __slots__ = ("_layer",)

    def __init__(self, layer: keras.layers.Layer):
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    @staticmethod
    def activation(x: Any) -> Any:
        return x


class PreActivation(keras.layers.Layer):
    """A layer's own computation without its activation, on the layer's own variables.

    The wrapped layer's ``call`` runs with ``self.activation`` read as the
    identity, so the result follows any later change of the layer's weights.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any):
        super().__init__(name=f"{layer.name}_pre_activation", dtype=layer.dtype_policy, **kwargs)
        self.wrapped = layer
        self.built = True

    def call(self, inputs: Any) -> Any:
        return type(self.wrapped).call(_Linear(self.wrapped), inputs)


def _activation_name(function: Any) -> str | None:
    if function is None:
        return "linear"
    if isinstance(function, str):
        return function
    return getattr(function, "__name__", None)


@dataclass(frozen=True)
class _Found:
    """Where the pre-activation of a tensor is: ``tensor`` (symbolic) or None when it is the output itself."""

    status: str  # "removed" | "linear" | "unknown"
    where: str
    tensor: Any = None
    removed: str | None = None


def _node_arguments(tensor: Any) -> tuple[Any, tuple, dict]:
    history = tensor._keras_history
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, tuple(node.arguments.args), dict(node.arguments.kwargs)


def _single_tensor(args: tuple, kwargs: dict) -> Any:
    values = [*args, *kwargs.values()]
    tensors = [v for v in values if isinstance(v, keras.KerasTensor)]
    return tensors[0] if len(tensors) == 1 else None


def _find_pre_activation(tensor: Any) -> _Found:
    """Follow a symbolic tensor back to its producing operation and find its logits."""
    if getattr(tensor, "_keras_history", None) is None:
        return _Found("unknown", "a tensor without graph history")
    operation, args, kwargs = _node_arguments(tensor)
    kind = type(operation).__name__
    where = f"{kind} {operation.name!r}"
    if isinstance(operation, keras.layers.InputLayer):
        return _Found("linear", f"the model input {operation.name!r}")
    if isinstance(operation, keras.Model):
        return _through_nested(operation, args, kwargs, where)
    source = _single_tensor(args, kwargs)
    # Softmax layer, keras.ops.softmax / sigmoid / log_softmax operations
    op_kind = {"Softmax": "softmax", "Sigmoid": "sigmoid", "LogSoftmax": "log_softmax"}.get(kind)
    if op_kind is not None and not hasattr(operation, "activation"):
        if source is None:
            return _Found("unknown", where)
        return _Found("removed", f"the input of {where}", source, op_kind)
    if hasattr(operation, "activation"):
        name = _activation_name(operation.activation)
        squashing = SQUASHING.get(name or "")
        if squashing is not None:
            if isinstance(operation, keras.layers.Activation):
                if source is None:
                    return _Found("unknown", where)
                return _Found("removed", f"the input of {where}", source, squashing)
            if source is None:
                return _Found("unknown", where)
            return _Found("removed", f"the pre-activation of {where}", PreActivation(operation)(source), squashing)
        if name in _NOT_SQUASHING:
            return _Found("linear", f"the output of {where} (activation {name!r})")
        return _Found("unknown", f"{where} with activation {name or type(operation.activation).__name__!r}")
    return _Found("unknown", where)


def _through_nested(model: keras.Model, args: tuple, kwargs: dict, where: str) -> _Found:
    """A nested model as the last operation: find its logits and call that view in the outer graph."""
    try:
        inner_inputs, inner_outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return _Found("unknown", f"{where} (not built with an Input)")
    if len(inner_inputs) != 1 or len(inner_outputs) != 1:
        return _Found("unknown", f"{where} (several inputs or outputs)")
    found = _find_pre_activation(inner_outputs[0])
    if found.status != "removed":
        return _Found(found.status, f"{found.where} inside {where}")
    source = _single_tensor(args, kwargs)
    if source is None:
        return _Found("unknown", where)
    view = keras.Model(inner_inputs[0], found.tensor, name=f"{model.name}_logits")
    return _Found("removed", f"{found.where} inside {where}", view(source), found.removed)


def _probe_inputs(model: keras.Model) -> np.ndarray:
    shape = tuple(32 if s is None else int(s) for s in model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    half = _PROBE_IMAGES // 2
    uniform = rng.uniform(0.0, 1.0, size=(half, *shape))
    normal = rng.normal(0.0, 1.0, size=(_PROBE_IMAGES - half, *shape))
    return np.concatenate([uniform, normal]).astype(np.float32)


def looks_like_probabilities(values: np.ndarray) -> bool:
    """True when every output is finite and in [0, 1] (softmax rows and sigmoid units both are).

    Example:
        >>> looks_like_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
        True
        >>> looks_like_probabilities(np.array([[-1.3, 2.0]]))
        False
    """
    values = np.asarray(values, dtype=np.float64)
    return bool(values.size and np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0)


def _layer_names(model: keras.Model) -> str:
    return ", ".join(layer.name for layer in model.layers)


def _logits(model: keras.Model) -> ExplainedOutput:
    found = _find_pre_activation(model.outputs[0])
    if found.status == "removed":
        view = keras.Model(model.inputs[0], found.tensor, name=f"{model.name}_logits")
        return ExplainedOutput(view, OUTPUT_LOGITS, f"logits: {found.where} ({found.removed} removed)", found.removed)
    if found.status == "linear":
        return ExplainedOutput(model, OUTPUT_LOGITS, f"logits: {found.where}, no softmax/sigmoid to remove")
    outputs = np.asarray(model(_probe_inputs(model), training=False))
    if looks_like_probabilities(outputs):
        raise OutputSelectionError(
            f"output 'logits': the model ends in {found.where}, which hides its pre-activation, and its "
            f"outputs look like probabilities (every value in [0, 1] on {_PROBE_IMAGES} probe images); "
            "medxai will not explain probabilities as logits. Set output: probabilities to explain them as "
            f"they are, or output: <layer name> naming the layer that gives the logits (layers: {_layer_names(model)})"
        )
    return ExplainedOutput(
        model,
        OUTPUT_LOGITS,
        f"logits: the model output as it is ({found.where}; a probe found values outside [0, 1], so not probabilities)",
    )


def _single_input_output(model: keras.Model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise OutputSelectionError(
            f"medxai explains models with one input and one output; this model has "
            f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)"
        )


def explained_output(model: keras.Model, output: str = OUTPUT_LOGITS) -> ExplainedOutput:
    """The explained view of a model and what it explains.

    Args:
        model: A built Keras model with one input and one output.
        output: ``"logits"`` (the pre-activation of a final softmax/sigmoid,
            found from the graph; the model itself when its output is not
            squashed), ``"probabilities"`` (the model's output as is) or the name
            of a layer. A layer with more than two output axes (a feature map) is
            averaged over its spatial axes, so a target selects one channel.

    Returns:
        An :class:`ExplainedOutput` whose model maps the input to ``(N, n_outputs)``.

    Raises:
        OutputSelectionError: unknown layer name, several inputs/outputs, or
            logits that cannot be reached from a model whose outputs look like
            probabilities.
    """
    if not isinstance(model, keras.Model):
        raise OutputSelectionError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        model.inputs
    except (AttributeError, ValueError) as err:
        raise OutputSelectionError(
            "the model has not been built: give it an Input layer or call it once on data"
        ) from err
    _single_input_output(model)
    if output == OUTPUT_PROBABILITIES:
        result = ExplainedOutput(model, output, "probabilities: the model output as it is")
    elif output == OUTPUT_LOGITS:
        result = _logits(model)
    else:
        names = [layer.name for layer in model.layers]
        if output not in names:
            raise OutputSelectionError(
                f"output {output!r} is neither 'logits', 'probabilities' nor a layer of "
                f"the model (layers: {', '.join(names)})"
            )
        tensor = model.get_layer(output).output
        description = f"layer {output!r}"
        if len(tensor.shape) > 2:
            axes = tuple(range(1, len(tensor.shape) - 1))
            tensor = keras.ops.mean(tensor, axis=axes)
            description += " (averaged over its spatial axes)"
        result = ExplainedOutput(keras.Model(model.inputs[0], tensor, name=f"{model.name}_{output}"), output, description)
    if len(result.model.outputs[0].shape) != 2:
        raise OutputSelectionError(
            f"the explained output must be (batch, classes); got shape {result.model.outputs[0].shape}"
        )
    return _two_classes(result) if _binary_sigmoid(model, result) else result


def _binary_sigmoid(model: keras.Model, result: ExplainedOutput) -> bool:
    """One output unit squashed by a sigmoid (found in the graph, or probed when asked for probabilities)."""
    if result.model.outputs[0].shape[-1] != 1 or result.requested not in (OUTPUT_LOGITS, OUTPUT_PROBABILITIES):
        return False
    if head_activation(model) in _SIGMOIDS:
        return True
    return result.requested == OUTPUT_PROBABILITIES and looks_like_probabilities(
        np.asarray(model(_probe_inputs(model), training=False))
    )


def _two_classes(result: ExplainedOutput) -> ExplainedOutput:
    """One output unit as two classes: ``[-z, z]`` for a logit, ``[1 - p, p]`` for a probability."""
    unit = result.model.outputs[0]
    probability = result.requested == OUTPUT_PROBABILITIES
    other = keras.ops.subtract(1.0, unit) if probability else keras.ops.negative(unit)
    both = keras.ops.concatenate([other, unit], axis=-1)
    model = keras.Model(result.model.inputs[0], both, name=f"{result.model.name}_two_classes")
    note = "1 - p" if probability else "its negative"
    description = f"{result.description}; one output unit read as two classes (1: the unit, 0: {note})"
    return ExplainedOutput(model, result.requested, description, result.removed)


def head_activation(model: keras.Model) -> str | None:
    """The squashing activation at the end of ``model`` found from its graph (``"softmax"``, ``"sigmoid"``, ...), or None.

    None when the output is not squashed, or when the graph hides it (a Lambda, a SavedModel).
    """
    try:
        found = _find_pre_activation(model.outputs[0])
    except (AttributeError, ValueError, IndexError):
        return None
    return found.removed if found.status == "removed" else None


def explained_model(model: keras.Model, output: str = OUTPUT_LOGITS) -> keras.Model:
    """The model whose output is explained (see :func:`explained_output`)."""
    return explained_output(model, output).model
