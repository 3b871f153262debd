"""The graph walk: from a model's output back to its logits, through every element-wise step.

The output tensor is followed back through every element-wise or shape-keeping operation
(``Activation('linear')``, ``relu``, ``Rescaling``, ``Dropout``, ``keras.ops.log``, ``p * 100``,
a nested model ending that way ...) until it meets a squashing operation (its input is the
logits), a layer that proves the output is logits, or something opaque (see
:mod:`medxai.methods._engine.output` for what is done with each).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import keras

#: Squashing activation names (``*_v2`` are TensorFlow's spellings) -> the probability function of their input.
SQUASHING = {
    "softmax": "softmax",
    "softmax_v2": "softmax",
    "log_softmax": "softmax",
    "log_softmax_v2": "softmax",
    "sigmoid": "sigmoid",
    "log_sigmoid": "sigmoid",
    "hard_sigmoid": "hard_sigmoid",
}
#: Activations that squash nothing: their output is still a logit-like score.
_NOT_SQUASHING = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "tanh", "mish",
    "softplus", "softsign", "celu", "glu", "exponential", "identity", "hard_silu", "hard_swish",
}  # fmt: skip
#: ``keras.ops`` operations (class names) that squash: the operation's input is the logits.
_SQUASHING_OPS = {
    "Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid",
    "LogSigmoid": "log_sigmoid", "HardSigmoid": "hard_sigmoid",
}  # fmt: skip
#: Layers that act element by element (or not at all at inference): class k of the output is class k of the input.
_ELEMENTWISE_LAYERS = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Rescaling", "Dropout", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
}  # fmt: skip
#: ``keras.ops`` operations that act element by element (with constants as other operands).
_ELEMENTWISE_OPS = {
    "Log", "Exp", "Log1p", "Expm1", "Multiply", "Add", "Subtract", "Divide", "TrueDivide", "Negative",
    "Sqrt", "Square", "Power", "Clip", "Absolute", "Abs", "Maximum", "Minimum", "Cast", "Relu", "Relu6",
    "Softplus", "LeakyRelu", "Elu", "Selu", "Gelu", "Silu", "Tanh",
}  # fmt: skip
SIGMOIDS = ("sigmoid", "hard_sigmoid")


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


# ------------------------------------------------------------------ the graph walk
@dataclass(frozen=True)
class Found:
    """The end of a walk back from an output tensor.

    ``status``: ``"squash"`` (``tensor`` is the logits under ``removed``), ``"linear"`` (the
    walked tensor is logits: a known pre-activation or the input), ``"input"`` (only
    element-wise steps down to the graph's input), ``"opaque"`` (``blocker`` hides what
    lies beneath; ``removed`` names a squashing op found under it).
    """

    status: str
    where: str
    tensor: Any = None
    removed: str | None = None
    passed: tuple[str, ...] = ()
    blocker: str | None = None


def _node_arguments(tensor: Any) -> tuple[Any, tuple, dict]:
    history = tensor._keras_history
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, tuple(node.arguments.args), dict(node.arguments.kwargs)


def _single_tensor(args: tuple, kwargs: dict) -> Any:
    values = [*args, *kwargs.values()]
    tensors = [v for v in values if isinstance(v, keras.KerasTensor)]
    return tensors[0] if len(tensors) == 1 else None


def _keeps_classes(operation: Any, source: Any, tensor: Any) -> bool:
    """Reshape/Flatten that leave a ``(N, K)`` tensor as it was."""
    return type(operation).__name__ in ("Reshape", "Flatten") and tuple(source.shape) == tuple(tensor.shape)


def _describe(operation: Any) -> str:
    return f"{type(operation).__name__} {operation.name!r}"


def walk(tensor: Any) -> Found:
    """Follow a symbolic tensor back through element-wise steps to what makes it (see the module docstring)."""
    passed: list[str] = []
    blocker: str | None = None

    def found(status: str, where: str, **values: Any) -> Found:
        if blocker is not None:  # beneath something opaque nothing is proved; a squash found there is named
            squashed = values.get("removed") if status == "squash" else None
            return Found("opaque", where, removed=squashed, passed=tuple(passed), blocker=blocker)
        return Found(status, where, passed=tuple(passed), **values)

    while True:
        if getattr(tensor, "_keras_history", None) is None:
            return found(
                "opaque", "a tensor without graph history", blocker=blocker or "a tensor without graph history"
            )
        operation, args, kwargs = _node_arguments(tensor)
        kind, where = type(operation).__name__, _describe(operation)
        source = _single_tensor(args, kwargs)
        if isinstance(operation, keras.layers.InputLayer):
            return found("input", f"the model input {operation.name!r}")
        if isinstance(operation, keras.Model):
            inner = _through_nested(operation, source, where)
            if inner.status != "input":
                return found(
                    inner.status, inner.where, tensor=inner.tensor, removed=inner.removed, blocker=inner.blocker
                )
            passed.extend(inner.passed)
        else:
            squash = _squashing(operation, kind)
            if squash is not None:
                if source is None:
                    return found("opaque", where, blocker=blocker or where)
                if (
                    isinstance(operation, keras.layers.Layer)
                    and hasattr(operation, "activation")
                    and not isinstance(operation, keras.layers.Activation)
                ):
                    return found(
                        "squash",
                        f"the pre-activation of {where}",
                        tensor=PreActivation(operation)(source),
                        removed=squash,
                    )
                return found("squash", f"the input of {where}", tensor=source, removed=squash)
            name = (
                _activation_name(getattr(operation, "activation", None)) if hasattr(operation, "activation") else None
            )
            elementwise = kind in _ELEMENTWISE_LAYERS or (
                kind in _ELEMENTWISE_OPS and not isinstance(operation, keras.layers.Layer)
            )
            if (
                elementwise
                and (kind != "Activation" or name in _NOT_SQUASHING)
                or (source is not None and _keeps_classes(operation, source, tensor))
            ):
                if source is None:
                    return found("opaque", where, blocker=blocker or where)
                passed.append(where)
            elif hasattr(operation, "activation") and name in _NOT_SQUASHING:
                return found("linear", f"the output of {where} (activation {name!r})")
            else:
                if hasattr(operation, "activation"):
                    where = f"{where} with activation {name or type(operation.activation).__name__!r}"
                blocker = blocker or where
                if source is None or hasattr(operation, "activation"):
                    return found("opaque", where, blocker=blocker)
        tensor = source


def _squashing(operation: Any, kind: str) -> str | None:
    """The squashing function an operation applies (its name), or None."""
    if kind in _SQUASHING_OPS and not hasattr(operation, "activation"):
        return _SQUASHING_OPS[kind]
    if kind == "Softmax":
        return "softmax"
    if kind == "Lambda":
        name = _activation_name(getattr(operation, "function", None)) or ""
        return name.replace("_v2", "") if name in SQUASHING else None
    if hasattr(operation, "activation"):
        name = _activation_name(operation.activation) or ""
        return name.replace("_v2", "") if name in SQUASHING else None
    return None


def _through_nested(model: keras.Model, source: Any, where: str) -> Found:
    """A nested model on the walk: its own walk, with a found logits tensor called in the outer graph."""
    try:
        inner_inputs, inner_outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return Found("opaque", f"{where} (not built with an Input)", blocker=where)
    if len(inner_inputs) != 1 or len(inner_outputs) != 1 or source is None:
        return Found("opaque", f"{where} (several inputs or outputs)", blocker=where)
    inner = walk(inner_outputs[0])
    passed = tuple(f"{p} inside {where}" for p in inner.passed)
    if inner.status != "squash":
        blocker = None if inner.blocker is None else f"{inner.blocker} inside {where}"
        return replace(inner, where=f"{inner.where} inside {where}", passed=passed, blocker=blocker)
    view = keras.Model(inner_inputs[0], inner.tensor, name=f"{model.name}_logits")
    return Found("squash", f"{inner.where} inside {where}", view(source), inner.removed, passed)
