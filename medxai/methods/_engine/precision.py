"""Mixed precision for the explained model (``runtime.precision: mixed``).

A copy of the model computes in float16 (on a GPU) or bfloat16 (elsewhere) with
its weights kept in float32; inputs, outputs and attributions stay float32.
It is faster only where the hardware has fast half-precision arithmetic (GPU
tensor cores), and it costs accuracy: check the completeness error of IG
(``medxai evaluate``) before relying on it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed")


def mixed_policy_name() -> str:
    """``mixed_float16`` where a GPU is visible, else ``mixed_bfloat16``."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def computed_precision(model: keras.Model, requested: str = "float32") -> str:
    """The precision ``model`` really computes in: ``"float32"``, or the half-precision policy of its layers.

    ``"mixed"`` asks for :func:`mixed_precision_copy`; a model built under a global
    ``mixed_float16``/``mixed_bfloat16`` policy computes in half precision whatever
    was asked, and that is what provenance must say.

    Example:
        >>> computed_precision(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        'float32'
    """
    policies = sorted(
        {
            layer.dtype_policy.name
            for layer in _all_layers(model)
            if layer.dtype_policy.compute_dtype in ("float16", "bfloat16")
        }
    )
    if not policies:
        return "float32"
    found = " and ".join(policies)
    if requested == "mixed":
        return found
    return f"{found} (the model's own dtype policy)"


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
    return layers


def mixed_precision_copy(model: keras.Model, policy: str | None = None) -> keras.Model:
    """A copy of ``model`` whose layers compute in half precision, with the same (float32) weights."""
    policy = policy or mixed_policy_name()

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        config = layer.get_config()
        config["dtype"] = policy
        if callable(getattr(layer, "activation", None)):
            config["activation"] = layer.activation  # the function itself: tf.nn.softmax has no registered name
        try:
            return layer.__class__.from_config(config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"precision 'mixed' cannot copy layer {layer.name!r}: {err}") from err

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
