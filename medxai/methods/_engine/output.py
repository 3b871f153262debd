"""Which output of a Keras model is explained (logits, probabilities or a named layer), and what it provably is.

Softmax and sigmoid saturate, so gradients of probabilities vanish exactly where a
model is confident. medxai explains the pre-activation (logits) by default, and
never calls "logits" what it did not prove to be logits (xplique's ``output_layer``
silently explains the softmax; that is the defect avoided here).

**The graph is the first witness.** The output tensor is followed back through
every element-wise or shape-keeping operation (``Activation('linear')``,
``relu``, ``Rescaling``, ``Dropout``, ``keras.ops.log``, ``p * 100``, a nested
model ending that way ...) until one of these is found:

* a squashing operation: a ``Softmax`` layer, an ``Activation`` or a Dense/Conv
  ``activation`` (``"softmax"``, ``tf.nn.softmax`` = ``softmax_v2``,
  ``sigmoid``, ``log_softmax``, ``log_sigmoid``, ``hard_sigmoid``), the same
  functions as ``keras.ops`` in a functional graph or inside a ``Lambda``. Its
  input is the logits (a Dense/Conv is run without its activation by
  :class:`PreActivation`, on the user's own variables); whatever follows it is
  set aside;
* a known pre-activation: a layer computing the output with a non-squashing
  activation (a Dense/Conv with ``linear``, ``relu`` ...) or the model input. The
  output is then proved to be logits (scores that no softmax/sigmoid squashed);
* something opaque: a ``Lambda``, a SavedModel's ``TFSMLayer``, an unknown
  layer or activation function, a merge. The walk goes on beneath it only to
  name a softmax/sigmoid hidden under it (then ``logits`` is refused: the opaque
  step may mix the classes).

**The output's values are the second witness** when the graph proves nothing:
on probe images (and, in a pipeline run, on the study's first batch, see
:meth:`Head.check_values`), rows summing to 1 are softmax probabilities,
``exp(rows)`` summing to 1 are log-probabilities, values all in [0, 1] are
(sigmoid) probabilities; anything else is explained as logits. ``logits`` is
refused for probabilities and log-probabilities with a message that names the
layer and the fix (``output: probabilities``, ``output: <layer>``, or
``model.output_kind: logits`` when the user knows better).

**Probabilities** are always the squashing function of the logits
(:attr:`Head.activation`): softmax, or sigmoid for a multi-label model; for a
model without a head (trained ``from_logits=True``) the activation is
``activation`` (default: sigmoid for one unit, softmax for several). Scores,
thresholds and ``predicted`` are computed from these in the pipeline.

A binary model with one output unit is read as two classes whatever its head:
class 1 is the unit (its logit ``z``, or ``p``) and class 0 its opposite (``-z``,
the logit of ``1 - p``; or ``1 - p``), so ordinary 0/1 labels and ``predicted``
mean what they say.

What was explained is recorded in :attr:`ExplainedOutput.description`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import keras
import numpy as np

from medxai.errors import OutputSelectionError
from medxai.methods._engine import OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from medxai.methods._engine.spec import OutputSpec

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
_SIGMOIDS = ("sigmoid", "hard_sigmoid")
_PROBE_IMAGES = 8
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Head:
    """What a model's final output is, and where its logits are.

    Attributes:
        kind: ``"logits"`` (the output, or a tensor under it, holds logits reachable as
            :attr:`logits`), ``"probabilities"`` or ``"log_probabilities"`` (values
            whose logits cannot be reached), or ``"unknown"`` (neither can be proved).
        activation: ``"softmax"``, ``"sigmoid"`` or ``"hard_sigmoid"``: the function that makes
            the probabilities of :attr:`logits` (for ``"logits"``), or the kind of
            probabilities (softmax rows or independent sigmoid units).
        where: In words, where the logits are or why they cannot be reached.
        witness: What proved it: ``"graph"``, ``"values"`` (probe images) or ``"user"``
            (``model.output_kind``).
        logits: The symbolic logits tensor in the model's graph (None: not reachable).
        removed: The squashing activation set aside to reach the logits, or None.
        values: For a ``"values"`` witness, what the probe images' outputs looked like.
        blocker: The opaque layer hiding the logits (named in refusals), or None.
    """

    kind: str
    activation: str
    where: str
    witness: str
    logits: Any = None
    removed: str | None = None
    values: str | None = None
    blocker: str | None = None
    units: int = field(default=0)

    @property
    def multi_label(self) -> bool:
        """Classes scored independently (sigmoid units), so ``predicted`` means every class over 0.5."""
        return self.activation in _SIGMOIDS and self.units > 1

    def check_values(self, values: np.ndarray) -> None:
        """Check the study's outputs against a reading that only probe images witnessed.

        Args:
            values: ``(N, units)`` raw model outputs on the study's first batch.

        Raises:
            OutputSelectionError: the study's outputs look like something else than the
                probe images' (e.g. logits whose values happen to lie in [0, 1]); the
                message names what each looked like and the ``model.output_kind`` fix.
        """
        if self.witness != "values":
            return
        seen = read_values(values)
        if self.values is not None and seen != self.values:
            raise OutputSelectionError(
                f"the model output ({self.where}) looked like {_VALUE_WORDS[self.values]} on {_PROBE_IMAGES} probe "
                f"images but like {_VALUE_WORDS[seen]} on the study's first {len(values)} image(s); medxai will "
                "not guess which they are: set model.output_kind: logits or model.output_kind: probabilities "
                "(and model.activation: softmax or sigmoid) to say what the model outputs"
            )


_VALUE_WORDS = {
    "softmax": "softmax probabilities (rows summing to 1)",
    "log_softmax": "log-probabilities (exp of each row summing to 1)",
    "sigmoid": "probabilities (every value in [0, 1])",
    "logits": "logits (values outside [0, 1])",
}


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
        head: What the model's output is (None for a named layer).
    """

    model: keras.Model
    requested: str
    description: str
    removed: str | None = None
    head: Head | None = None


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
class _Found:
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


def _walk(tensor: Any) -> _Found:
    """Follow a symbolic tensor back through element-wise steps to what makes it (see the module docstring)."""
    passed: list[str] = []
    blocker: str | None = None

    def found(status: str, where: str, **values: Any) -> _Found:
        if blocker is not None:  # beneath something opaque nothing is proved; a squash found there is named
            squashed = values.get("removed") if status == "squash" else None
            return _Found("opaque", where, removed=squashed, passed=tuple(passed), blocker=blocker)
        return _Found(status, where, passed=tuple(passed), **values)

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
                if inner.status == "opaque" and blocker is None:
                    return _Found(
                        "opaque", inner.where, removed=inner.removed, passed=tuple(passed), blocker=inner.blocker
                    )
                return found(inner.status, inner.where, tensor=inner.tensor, removed=inner.removed)
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


def _through_nested(model: keras.Model, source: Any, where: str) -> _Found:
    """A nested model on the walk: its own walk, with a found logits tensor called in the outer graph."""
    try:
        inner_inputs, inner_outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return _Found("opaque", f"{where} (not built with an Input)", blocker=where)
    if len(inner_inputs) != 1 or len(inner_outputs) != 1 or source is None:
        return _Found("opaque", f"{where} (several inputs or outputs)", blocker=where)
    inner = _walk(inner_outputs[0])
    passed = tuple(f"{p} inside {where}" for p in inner.passed)
    if inner.status != "squash":
        blocker = None if inner.blocker is None else f"{inner.blocker} inside {where}"
        return replace(inner, where=f"{inner.where} inside {where}", passed=passed, blocker=blocker)
    view = keras.Model(inner_inputs[0], inner.tensor, name=f"{model.name}_logits")
    return _Found("squash", f"{inner.where} inside {where}", view(source), inner.removed, passed)


# ------------------------------------------------------------------ the values witness
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


def read_values(values: np.ndarray) -> str:
    """What ``(N, units)`` outputs look like: ``"softmax"``, ``"log_softmax"``, ``"sigmoid"`` or ``"logits"``.

    Rows summing to 1 (within 1e-3) are softmax probabilities, rows whose
    exponentials sum to 1 log-probabilities, values all in [0, 1] sigmoid
    probabilities; anything else logits.

    Example:
        >>> read_values(np.array([[0.2, 0.8], [0.5, 0.5]]))
        'softmax'
        >>> read_values(np.log(np.array([[0.2, 0.8]])))
        'log_softmax'
        >>> read_values(np.array([[0.9, 0.7]]))
        'sigmoid'
        >>> read_values(np.array([[0.9, 1.7]]))
        'logits'
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    several = values.shape[-1] > 1
    if several and looks_like_probabilities(values) and np.all(np.abs(values.sum(-1) - 1) <= _SUM_TOLERANCE):
        return "softmax"
    if (
        several
        and np.all(np.isfinite(values))
        and values.max() <= 0
        and np.all(np.abs(np.exp(values).sum(-1) - 1) <= _SUM_TOLERANCE)
    ):
        return "log_softmax"
    if looks_like_probabilities(values):
        return "sigmoid"
    return "logits"


def _layer_names(model: keras.Model) -> str:
    return ", ".join(layer.name for layer in model.layers)


def _default_activation(spec: OutputSpec, units: int) -> str:
    if spec.activation is not None:
        if spec.activation == "softmax" and units == 1:
            raise OutputSelectionError(
                "model.activation: softmax over one output unit is always 1; a one-unit model is binary: "
                "use model.activation: sigmoid (or leave it unset)"
            )
        return spec.activation
    return "sigmoid" if units == 1 else "softmax"


def read_head(model: keras.Model, spec: OutputSpec | str = OUTPUT_LOGITS) -> Head:
    """What ``model``'s output is and where its logits are (see the module docstring).

    Raises:
        OutputSelectionError: ``model.output_kind`` or ``model.activation`` contradict a
            softmax/sigmoid the graph proves.
    """
    spec = OutputSpec.of(spec)
    units = int(model.outputs[0].shape[-1])
    try:
        found = _walk(model.outputs[0])
    except (AttributeError, ValueError, IndexError, TypeError) as err:
        found = _Found("opaque", f"a graph medxai cannot follow ({err})", blocker="the model's graph")
    aside = f"; set aside after it: {', '.join(found.passed)}" if found.passed else ""
    if found.status == "squash":
        family = SQUASHING[str(found.removed)]
        if spec.kind == "logits":
            raise OutputSelectionError(
                f"model.output_kind: logits, but the model's output is squashed: {found.where} is the input of "
                f"a {found.removed}; remove model.output_kind (auto finds the logits) or set it to probabilities"
            )
        if spec.activation is not None and (spec.activation in _SIGMOIDS) != (family in _SIGMOIDS):
            raise OutputSelectionError(
                f"model.activation: {spec.activation}, but the model's head is a {found.removed} ({found.where})"
            )
        return Head("logits", family, f"{found.where} ({found.removed} removed{aside})", "graph", found.tensor,
                    found.removed, units=units)  # fmt: skip
    if found.status in ("linear", "input"):
        where = (
            found.where if found.status == "linear" else f"the model output, computed element-wise from {found.where}"
        )
        if spec.kind == "probabilities":
            raise OutputSelectionError(
                f"model.output_kind: probabilities, but the graph proves the output is not squashed ({where}); "
                "remove model.output_kind, or set it to logits"
            )
        words = f"{where}, no softmax/sigmoid after it{aside}"
        return Head("logits", _default_activation(spec, units), words, "graph", model.outputs[0], units=units)
    # opaque: the user's word, else the values
    hidden = f" (a {found.removed} lies under it)" if found.removed else ""
    where = f"{found.blocker}{hidden}"
    if spec.kind == "logits":
        if found.removed:
            raise OutputSelectionError(
                f"model.output_kind: logits, but {found.blocker} is computed from the output of a {found.removed}; "
                f"use output: <layer name> naming the layer that gives the logits (layers: {_layer_names(model)})"
            )
        words = f"the model output as it is ({where}; model.output_kind: logits)"
        activation = _default_activation(spec, units)
        return Head("logits", activation, words, "user", model.outputs[0], units=units, blocker=found.blocker)
    if spec.kind == "probabilities":
        stated = spec.activation or ("softmax" if found.removed in ("softmax", "log_softmax") else None)
        activation = stated or ("softmax" if read_values(_probe(model)) == "softmax" else "sigmoid")
        return Head("probabilities", activation, f"the model output ({where}; model.output_kind: probabilities)",
                    "user", units=units, blocker=found.blocker)  # fmt: skip
    seen = read_values(_probe(model))
    if found.removed and seen == "logits":  # e.g. a Lambda(p * 100) over a softmax: neither logits nor probabilities
        return Head("unknown", _default_activation(spec, units), f"{found.blocker}, computed from the output of a "
                    f"{found.removed}, gives values that are not probabilities", "graph", units=units,
                    blocker=found.blocker)  # fmt: skip
    kind = {"softmax": "probabilities", "sigmoid": "probabilities", "log_softmax": "log_probabilities"}.get(
        seen, "logits"
    )
    if kind == "logits":
        return Head("logits", _default_activation(spec, units), f"the model output as it is ({where}; its values on "
                    f"{_PROBE_IMAGES} probe images are not probabilities)", "values", model.outputs[0], values=seen,
                    units=units, blocker=found.blocker)  # fmt: skip
    activation = spec.activation or ("softmax" if seen in ("softmax", "log_softmax") else "sigmoid")
    return Head(kind, activation, f"the model output ({where})", "values", values=seen, units=units,
                blocker=found.blocker, removed=found.removed)  # fmt: skip


def _probe(model: keras.Model) -> np.ndarray:
    return np.asarray(model(_probe_inputs(model), training=False))


# ------------------------------------------------------------------ the explained view
def _logits_view(model: keras.Model, head: Head) -> ExplainedOutput:
    if head.kind != "logits":
        raise OutputSelectionError(f"output 'logits': {_refusal(model, head)}")
    tensor = head.logits
    view = model if tensor is model.outputs[0] else keras.Model(model.inputs[0], tensor, name=f"{model.name}_logits")
    return ExplainedOutput(view, OUTPUT_LOGITS, f"logits: {head.where}", head.removed, head)


def _refusal(model: keras.Model, head: Head) -> str:
    blocker = head.blocker or "an opaque layer"
    if head.kind == "unknown":
        reason = f"{head.where}"
    else:
        hidden = f" (a {head.removed} lies under it)" if head.removed else ""
        looked = _VALUE_WORDS[head.values] if head.values else head.kind.replace("_", "-")
        reason = f"its outputs{hidden} look like {looked} on {_PROBE_IMAGES} probe images"
    return (
        f"the model ends in {blocker}, which hides its pre-activation, and {reason}; medxai will not explain "
        "them as logits. Set output: probabilities to explain the probabilities, or output: <layer name> naming "
        f"the layer that gives the logits (layers: {_layer_names(model)}); if the outputs really are logits, "
        "set model.output_kind: logits"
    )


def _probabilities_view(model: keras.Model, head: Head) -> ExplainedOutput:
    if head.kind == "unknown":
        raise OutputSelectionError(f"output 'probabilities': {_refusal(model, head)}")
    if head.kind == "logits":
        logits = _logits_view(model, head).model
        squash = {"softmax": keras.ops.softmax, "sigmoid": keras.ops.sigmoid, "hard_sigmoid": keras.ops.hard_sigmoid}
        probabilities = squash[head.activation](logits.outputs[0])
        view = keras.Model(model.inputs[0], probabilities, name=f"{model.name}_probabilities")
        words = f"probabilities: {head.activation} of the logits ({head.where})"
        return ExplainedOutput(view, OUTPUT_PROBABILITIES, words, head.removed, head)
    if head.kind == "log_probabilities":
        view = keras.Model(model.inputs[0], keras.ops.exp(model.outputs[0]), name=f"{model.name}_probabilities")
        return ExplainedOutput(view, OUTPUT_PROBABILITIES, f"probabilities: exp of the model output, log-probabilities "
                               f"({head.where})", None, head)  # fmt: skip
    return ExplainedOutput(model, OUTPUT_PROBABILITIES, f"probabilities: {head.where}", None, head)


def _single_input_output(model: keras.Model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise OutputSelectionError(
            f"medxai explains models with one input and one output; this model has "
            f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)"
        )


def functional(model: keras.Model) -> keras.Model:
    """``model`` itself when it has a symbolic graph; a subclassed model that has been called, wrapped in one.

    The wrapper calls the user's model (its own variables) on a new ``keras.Input`` of
    the shape it was built with; the walk then sees it as one opaque step.

    Raises:
        OutputSelectionError: the model has never been built (no input shape is known).
    """
    try:
        model.inputs  # noqa: B018 (raises when the model has no symbolic graph)
        return model
    except (AttributeError, ValueError) as err:
        shapes = getattr(model, "_build_shapes_dict", None) or {}
        shape = next(iter(shapes.values()), None) if len(shapes) == 1 else None
        if not getattr(model, "built", False) or not shape or not isinstance(shape, (tuple, list)):
            raise OutputSelectionError(
                "the model has not been built: give it an Input layer or call it once on data"
            ) from err
        inputs = keras.Input(tuple(shape[1:]), name=f"{model.name}_input")
        return keras.Model(inputs, model(inputs), name=f"{model.name}_functional")


def _float_input(model: keras.Model) -> None:
    dtype = str(model.inputs[0].dtype)
    if "float" not in dtype:
        raise OutputSelectionError(
            f"the model's input {model.inputs[0].name!r} is {dtype}: gradients do not flow through an integer "
            "input, and medxai explains the model on the float values it is given. Build the model on a "
            "float32 Input (keras.Input(shape, dtype='float32')) followed by the same layers, and feed it "
            "the same values as floats"
        )


def explained_output(model: keras.Model, output: str | OutputSpec = OUTPUT_LOGITS) -> ExplainedOutput:
    """The explained view of a model and what it explains.

    Args:
        model: A built Keras model with one input and one output.
        output: ``"logits"`` (the logits, found as the module docstring says),
            ``"probabilities"`` (the squashing function of the logits, or the output
            where it is proved or witnessed to be probabilities) or the name of a
            layer (a layer with more than two output axes, a feature map, is averaged
            over its spatial axes, so a target selects one channel); or an
            :class:`OutputSpec` that also says what the model outputs.

    Returns:
        An :class:`ExplainedOutput` whose model maps the input to ``(N, n_outputs)``.

    Raises:
        OutputSelectionError: unknown layer name, several inputs/outputs, an unbuilt
            model, or logits that cannot be proved (the message names the layer and the fix).
    """
    if not isinstance(model, keras.Model):
        raise OutputSelectionError(f"expected a keras.Model, got {type(model).__name__}")
    spec = OutputSpec.of(output)
    model = functional(model)
    _single_input_output(model)
    _float_input(model)
    if spec.explain in (OUTPUT_LOGITS, OUTPUT_PROBABILITIES):
        head = read_head(model, spec)
        result = _logits_view(model, head) if spec.explain == OUTPUT_LOGITS else _probabilities_view(model, head)
    else:
        result = _layer_view(model, spec.explain)
    if len(result.model.outputs[0].shape) != 2:
        raise OutputSelectionError(
            f"the explained output must be (batch, classes); got shape {result.model.outputs[0].shape}"
        )
    return _two_classes(result) if result.head is not None and result.model.outputs[0].shape[-1] == 1 else result


def _layer_view(model: keras.Model, name: str) -> ExplainedOutput:
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise OutputSelectionError(
            f"output {name!r} is neither 'logits', 'probabilities' nor a layer of "
            f"the model (layers: {', '.join(names)})"
        )
    tensor = model.get_layer(name).output
    description = f"layer {name!r}"
    if len(tensor.shape) > 2:
        axes = tuple(range(1, len(tensor.shape) - 1))
        tensor = keras.ops.mean(tensor, axis=axes)
        description += " (averaged over its spatial axes)"
    return ExplainedOutput(keras.Model(model.inputs[0], tensor, name=f"{model.name}_{name}"), name, description)


def _two_classes(result: ExplainedOutput) -> ExplainedOutput:
    """One output unit as two classes: ``[-z, z]`` for a logit, ``[1 - p, p]`` for a probability."""
    unit = result.model.outputs[0]
    probability = result.requested == OUTPUT_PROBABILITIES
    other = keras.ops.subtract(1.0, unit) if probability else keras.ops.negative(unit)
    both = keras.ops.concatenate([other, unit], axis=-1)
    model = keras.Model(result.model.inputs[0], both, name=f"{result.model.name}_two_classes")
    note = "1 - p" if probability else "its negative"
    description = f"{result.description}; one output unit read as two classes (1: the unit, 0: {note})"
    return replace(result, model=model, description=description)


def head_activation(model: keras.Model) -> str | None:
    """The squashing activation at the end of ``model`` from its graph (``"softmax"``, ``"sigmoid"``, ...), or None.

    None when the output is not squashed, or when the graph hides it (a Lambda, a SavedModel).
    """
    try:
        found = _walk(model.outputs[0])
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
    return found.removed if found.status == "squash" else None


def explained_model(model: keras.Model, output: str | OutputSpec = OUTPUT_LOGITS) -> keras.Model:
    """The model whose output is explained (see :func:`explained_output`)."""
    return explained_output(model, output).model
