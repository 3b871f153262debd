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

from dataclasses import dataclass, replace
from typing import Any

import keras

from medxai.errors import OutputSelectionError
from medxai.methods._engine import OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from medxai.methods._engine.head import PROBE_IMAGES, VALUE_WORDS, Head, layer_names, read_head
from medxai.methods._engine.spec import OutputSpec


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
        looked = VALUE_WORDS[head.values] if head.values else head.kind.replace("_", "-")
        reason = f"its outputs{hidden} look like {looked} on {PROBE_IMAGES} probe images"
    return (
        f"the model ends in {blocker}, which hides its pre-activation, and {reason}; medxai will not explain "
        "them as logits. Set output: probabilities to explain the probabilities, or output: <layer name> naming "
        f"the layer that gives the logits (layers: {layer_names(model)}); if the outputs really are logits, "
        "set model.output_kind: logits"
    )


def _probabilities_view(model: keras.Model, head: Head) -> ExplainedOutput:
    if head.kind == "unknown":
        raise OutputSelectionError(f"output 'probabilities': {_refusal(model, head)}")
    if head.kind == "logits":
        logits = _logits_view(model, head).model
        squash = {"softmax": keras.ops.softmax, "sigmoid": keras.ops.sigmoid, "hard_sigmoid": keras.ops.hard_sigmoid}
        probabilities = _step(model, head.activation, squash[head.activation], logits.outputs[0])
        view = keras.Model(model.inputs[0], probabilities, name=f"{model.name}_probabilities")
        words = f"probabilities: {head.activation} of the logits ({head.where})"
        return ExplainedOutput(view, OUTPUT_PROBABILITIES, words, head.removed, head)
    if head.kind == "log_probabilities":
        exp = _step(model, "exp", keras.ops.exp, model.outputs[0])
        view = keras.Model(model.inputs[0], exp, name=f"{model.name}_probabilities")
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
            layer (for a classifier, a layer with more than two output axes, a feature map, is
            averaged over its spatial axes, so a target selects one channel; a segmentation
            model's layer stays dense, for region targets); or an
            :class:`OutputSpec` that also says what the model outputs.

    Returns:
        An :class:`ExplainedOutput` whose model maps the input to ``(N, n_outputs)``, or for a
        dense (segmentation) output to ``(N, *spatial, channels)``: a per-pixel softmax or
        sigmoid is found and removed as for a classifier (region targets select the score).

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
    if len(result.model.outputs[0].shape) < 2:
        raise OutputSelectionError(
            f"the explained output must be (batch, classes), or (batch, *spatial, channels) for a segmentation "
            f"model; got shape {result.model.outputs[0].shape}"
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
    # a classifier's feature map is averaged (a target then selects a channel); a segmentation
    # model's layer is kept dense, for region targets
    if len(tensor.shape) > 2 and len(model.outputs[0].shape) <= 2:
        axes = tuple(range(1, len(tensor.shape) - 1))
        tensor = _step(model, "mean", lambda t: keras.ops.mean(t, axis=axes), tensor)
        description += " (averaged over its spatial axes)"
    return ExplainedOutput(keras.Model(model.inputs[0], tensor, name=f"{model.name}_{name}"), name, description)


def _step(model: keras.Model, what: str, function: Any, tensor: Any) -> Any:
    """``function(tensor)`` as one layer of the view, named so that no layer of ``model`` has its name.

    A bare ``keras.ops`` call in a functional graph is named after the op (``concatenate``,
    ``softmax``), and in a process that loaded the model from a file that name can be a layer
    of the model's own (Keras then refuses the view): the layer's name is made unique here.
    """
    taken = {layer.name for layer in model.layers}
    name, k = f"medxai_{what}", 1
    while name in taken:
        k += 1
        name = f"medxai_{what}_{k}"
    return keras.layers.Lambda(function, name=name)(tensor)


def _two_classes(result: ExplainedOutput) -> ExplainedOutput:
    """One output unit as two classes: ``[-z, z]`` for a logit, ``[1 - p, p]`` for a probability."""
    unit = result.model.outputs[0]
    probability = result.requested == OUTPUT_PROBABILITIES
    model = result.model
    both = _step(
        model,
        "two_classes",
        lambda u: keras.ops.concatenate([keras.ops.subtract(1.0, u) if probability else keras.ops.negative(u), u], -1),
        unit,
    )
    model = keras.Model(model.inputs[0], both, name=f"{model.name}_two_classes")
    note = "1 - p" if probability else "its negative"
    description = f"{result.description}; one output unit read as two classes (1: the unit, 0: {note})"
    return replace(result, model=model, description=description)


def explained_model(model: keras.Model, output: str | OutputSpec = OUTPUT_LOGITS) -> keras.Model:
    """The model whose output is explained (see :func:`explained_output`)."""
    return explained_output(model, output).model
