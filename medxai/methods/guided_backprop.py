"""Guided backpropagation.

Springenberg, Dosovitskiy, Brox, Riedmiller (2015), "Striving for Simplicity: The All
Convolutional Net", ICLR workshop, arXiv:1412.6806 (section 3.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from medxai.methods._engine.plan import PathPlan
from medxai.methods.base import PathMethod

if TYPE_CHECKING:  # importing the class starts no TensorFlow
    import keras


#: Rectifier-like activations that guided backprop does not gate.
_UNGATED_ACTIVATIONS = {
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "softplus",
    "celu",
    "hard_silu",
    "hard_swish",
}


def ungated_rectifiers(model: keras.Model) -> list[tuple[str, str]]:
    """Layers (also inside nested models) whose rectifier guided backprop would not gate: (name, kind)."""
    found = []
    for layer in getattr(model, "layers", ()):
        kind = type(layer).__name__
        if hasattr(layer, "layers") and layer is not model:
            found += [(f"{layer.name}/{name}", what) for name, what in ungated_rectifiers(layer)]
        elif kind in ("LeakyReLU", "ELU", "PReLU"):
            found.append((layer.name, kind))
        elif kind == "ReLU" and (
            getattr(layer, "max_value", None) is not None
            or getattr(layer, "negative_slope", 0) != 0
            or getattr(layer, "threshold", 0) != 0
        ):
            found.append((layer.name, "ReLU with max_value/negative_slope/threshold"))
        else:
            activation = getattr(layer, "activation", None)
            name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
            if name in _UNGATED_ACTIVATIONS:
                found.append((layer.name, name))
    return found


class GuidedBackprop(PathMethod):
    """The input gradient with every ReLU gated on both passes.

    At each ReLU the backward signal ``R`` becomes ``R * [input > 0] * [R > 0]``
    (the paper's eq. for "guided backpropagation"). The gating is a gradient override
    inside the compiled gradient routine (:mod:`medxai.methods._engine.guided`): the
    user's model, its layers and its outputs are left untouched.

    Covered: every TensorFlow ``Relu`` op of the forward pass (``activation="relu"``,
    ``Activation("relu")``, ``ReLU()`` with default arguments, ``keras.ops.relu``,
    ``tf.nn.relu``), in nested models and custom layers too. A model whose layers use
    other rectifiers (``relu6``, leaky ReLU, ELU, GELU, swish, ``ReLU(max_value=...)``) is
    refused, since their gradients would pass ungated. Not detected: ``tf.maximum(x, 0)``
    written by hand and activations inside a SavedModel's compiled functions
    (``TFSMLayer``). A network without rectifiers gets its plain (signed) gradient.

    Attributions are signed: the gating keeps only positive signals *between* ReLUs,
    but the first layer's weights can still turn them negative at the input. The
    explained output is the logits by default, as for the other methods.

    Args:
        model: A built Keras model.
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``jit``, ``precision``,
            ``engine`` (see :class:`~medxai.methods.base.XAIMethod`; a shared engine is
            checked, then this method runs its own guided engine of the same settings).

    Example:
        >>> GuidedBackprop(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "guided_backprop"
    aliases = ("guided_backpropagation", "guided_bp")

    def __init__(self, model, **kwargs: Any):
        super().__init__(model, **kwargs)
        from medxai.methods._engine.guided import (
            GuidedGradientEngine,  # deferred: TensorFlow starts here
        )

        ungated = ungated_rectifiers(model)
        if ungated:
            raise ValueError(
                "guided_backprop gates ReLU only, and this model also has "
                + ", ".join(f"{name} ({kind})" for name, kind in ungated)
                + ": their gradients would pass ungated, so the map would silently mix guided and plain "
                "gradients; use a method that explains any activation (gradient, integrated_gradients, gradcam)"
            )
        shared = self.engine
        self.engine = GuidedGradientEngine(model, shared.spec, shared.jit, shared.precision)
        self._check_polarity()

    def plan(self, images: np.ndarray) -> PathPlan:
        return PathPlan(alphas=np.ones(1), weights=np.ones(1))
