"""Guided backpropagation's gradients: ReLUs gated on both passes, the user's model untouched.

Springenberg, Dosovitskiy, Brox, Riedmiller (2015), "Striving for Simplicity: The All
Convolutional Net", arXiv:1412.6806, section 3.4. At every ReLU the backward signal
``R`` becomes ``R * [input > 0] * [R > 0]``: the ordinary ReLU gradient (forward gate)
with negative incoming gradients dropped as well (backward gate).

How: the compiled gradient routine builds the model's forward pass under a
*gradient override* (``gradient_override_map({"Relu": ...})`` of the traced graph) and
differentiates it with ``tf.gradients``, which honours the override. Only the ops of
that one traced graph carry it; no layer, activation or variable of the user's model is
touched, and the forward values are the model's own.

Covered: every TensorFlow ``Relu`` op the forward pass runs, however it is spelled
(``activation="relu"`` of Dense/Conv layers, ``Activation("relu")``, ``keras.layers.ReLU()``
with its default arguments, ``keras.ops.relu``, ``tf.nn.relu``), in nested models and in
custom layers alike. Not covered (their gradients are the ordinary ones): other
rectifiers (``relu6``, leaky ReLU, ELU, GELU, ``ReLU(max_value=...)``), a rectifier
written as ``tf.maximum(x, 0)``, and ReLUs inside separately compiled functions (a
SavedModel's ``TFSMLayer``). On a network without ReLUs the result is the plain gradient.
"""

from __future__ import annotations

import tensorflow as tf

from medxai.methods._engine.engine import GradientEngine, TargetTensors, select

#: The registered gradient that replaces ``Relu``'s inside guided routines.
GUIDED_RELU = "MedxaiGuidedRelu"


def _guided_relu_gradient(op: tf.Operation, grad: tf.Tensor) -> tf.Tensor:
    """``grad * [relu input > 0] * [grad > 0]`` (the output of a ReLU is > 0 exactly where its input is)."""
    return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(grad), features=op.outputs[0])


try:
    tf.RegisterGradient(GUIDED_RELU)(_guided_relu_gradient)
except KeyError:  # already registered (a module reload)
    pass


class GuidedGradientEngine(GradientEngine):
    """A :class:`GradientEngine` whose gradients pass every ``Relu`` op as guided backprop does.

    Same arguments as :class:`GradientEngine`; plans, batching and results' layout are
    the engine's own. Forward values (:meth:`predict`) are the model's.
    """

    def _target_gradient(self, points: tf.Tensor, target: TargetTensors) -> tf.Tensor:
        graph = tf.compat.v1.get_default_graph()
        if tf.executing_eagerly():  # the override lives in a traced graph; the engine always compiles
            raise RuntimeError("guided gradients are computed inside the engine's compiled routine only")
        with graph.gradient_override_map({"Relu": GUIDED_RELU}):
            out = self.model(points, training=False)
        selected = select(out, target)
        (gradient,) = tf.gradients(selected, [points], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.cast(gradient, tf.float32)
