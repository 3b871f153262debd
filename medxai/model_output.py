"""Which output of a Keras model is explained: logits, probabilities or a named layer.

Softmax and sigmoid saturate, so gradients of probabilities vanish exactly where a
model is confident. medxai explains the pre-activation (logits) by default and
builds that model explicitly, rather than trusting a flag that may silently do
nothing (xplique's ``output_layer``).
"""

from __future__ import annotations

import keras

OUTPUT_LOGITS = "logits"
OUTPUT_PROBABILITIES = "probabilities"

_SQUASHING = ("softmax", "sigmoid")


class OutputSelectionError(ValueError):
    """The requested output cannot be built from the model."""


def _activation_name(layer: keras.layers.Layer) -> str | None:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", None)


def _single_input_output(model: keras.Model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise OutputSelectionError(
            f"medxai explains models with one input and one output; this model has "
            f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)"
        )


def _logits_model(model: keras.Model) -> keras.Model:
    last = model.layers[-1]
    name = _activation_name(last)
    if name not in _SQUASHING:
        return model  # the output is already pre-activation
    try:
        pre_activation = last.input
    except (AttributeError, ValueError) as err:
        raise OutputSelectionError(
            f"cannot reach the input of the last layer {last.name!r} to explain logits; "
            "pass output='probabilities' or the name of the logits layer"
        ) from err
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        logits = pre_activation
    else:
        # A Dense/Conv layer with a squashing activation: rebuild it with a linear
        # activation and the same weights, so the logits are an explicit tensor.
        config = last.get_config()
        config["activation"] = "linear"
        config["name"] = f"{last.name}_logits"
        linear = type(last).from_config(config)
        logits = linear(pre_activation)
        linear.set_weights(last.get_weights())
    return keras.Model(model.inputs[0], logits, name=f"{model.name}_logits")


def explained_model(model: keras.Model, output: str = OUTPUT_LOGITS) -> keras.Model:
    """Return the model whose output is explained.

    Args:
        model: A built Keras model with one input and one output.
        output: ``"logits"`` (the pre-activation of a final softmax/sigmoid; the
            model itself when its last layer is linear), ``"probabilities"``
            (the model's output as is) or the name of a layer. A layer with more
            than two output axes (a feature map) is averaged over its spatial
            axes, so a target selects one channel.

    Returns:
        A Keras model mapping the model's input to ``(N, n_outputs)``.

    Raises:
        OutputSelectionError: unknown layer name, several inputs/outputs, or
            logits that cannot be reached.
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
        selected = model
    elif output == OUTPUT_LOGITS:
        selected = _logits_model(model)
    else:
        names = [layer.name for layer in model.layers]
        if output not in names:
            raise OutputSelectionError(
                f"output {output!r} is neither 'logits', 'probabilities' nor a layer of "
                f"the model (layers: {', '.join(names)})"
            )
        tensor = model.get_layer(output).output
        if len(tensor.shape) > 2:
            axes = tuple(range(1, len(tensor.shape) - 1))
            tensor = keras.ops.mean(tensor, axis=axes)
        selected = keras.Model(model.inputs[0], tensor, name=f"{model.name}_{output}")
    if len(selected.outputs[0].shape) != 2:
        raise OutputSelectionError(
            f"the explained output must be (batch, classes); got shape {selected.outputs[0].shape}"
        )
    return selected
