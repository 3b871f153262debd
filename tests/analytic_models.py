"""Tiny Keras models whose attributions are known in closed form."""

from __future__ import annotations

import keras
import numpy as np


def linear_model(shape, n_classes=3, *, activation=None, seed=0):
    """F(x) = W^T flatten(x) + c, optionally followed by softmax/sigmoid. Returns (model, W, c)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    weights = rng.normal(size=(size, n_classes)).astype(np.float32)
    bias = rng.normal(size=(n_classes,)).astype(np.float32)
    inputs = keras.Input(shape)
    dense = keras.layers.Dense(n_classes, activation=activation)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([weights, bias])
    return model, weights, bias


#: The class of a one-unit model's own output: one unit reads as two classes (0: its negative, 1: the unit).
UNIT = 1


def power_model(shape, power, *, seed=0):
    """F(x) = (v . flatten(x))^power, one output. Returns (model, v)."""
    v = np.random.default_rng(seed).normal(size=(int(np.prod(shape)), 1)).astype(np.float32) / 4
    inputs = keras.Input(shape)
    dense = keras.layers.Dense(1, use_bias=False)
    out = keras.layers.Lambda(lambda z: z**power)(dense(keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, out)
    dense.set_weights([v])
    return model, v[:, 0]


def exp_model(shape, *, seed=0):
    """F(x) = exp(v . flatten(x)), one output. Returns (model, v)."""
    v = np.random.default_rng(seed).normal(size=(int(np.prod(shape)), 1)).astype(np.float32) / 4
    inputs = keras.Input(shape)
    dense = keras.layers.Dense(1, use_bias=False)
    out = keras.layers.Lambda(keras.ops.exp)(dense(keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, out)
    dense.set_weights([v])
    return model, v[:, 0]


def tanh_model(shape, scale, *, hard=False, seed=0):
    """F(x) = sum_i tanh(v_i x_i), one output: saturating, and IG from 0 is exactly tanh(v_i x_i).

    ``hard``: clip(v_i x_i, -1, 1) instead (saturating like a ReLU network: the path gradient
    jumps to 0 at alpha = 1 / (v_i x_i)); IG from 0 is exactly clip(v_i x_i, -1, 1). Returns (model, v).
    """
    v = (scale * np.random.default_rng(seed).uniform(0.5, 1.0, size=int(np.prod(shape)))).astype(np.float32)
    squash = (lambda z: keras.ops.clip(z, -1.0, 1.0)) if hard else keras.ops.tanh
    inputs = keras.Input(shape)
    flat = keras.layers.Flatten()(inputs)
    out = keras.layers.Lambda(lambda z: keras.ops.sum(squash(z * v), axis=1, keepdims=True))(flat)
    return keras.Model(inputs, out), v


def small_cnn(shape=(16, 16, 1), n_classes=2, *, seed=0):
    """A small random ReLU CNN (2D or 3D by the rank of shape) ending in softmax."""
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv2D if len(shape) == 3 else keras.layers.Conv3D
    pool = keras.layers.GlobalAveragePooling2D if len(shape) == 3 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(shape)
    x = conv(8, 3, padding="same", activation="relu")(inputs)
    x = conv(8, 3, padding="same", activation="relu")(x)
    x = pool()(x)
    out = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, out)


def tiny_model(shape=(16, 16, 1), seed=0) -> keras.Model:
    """The pipeline tests' model: one conv layer, global pooling, a softmax over 2 classes."""
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv2D if len(shape) == 3 else keras.layers.Conv3D
    pool = keras.layers.GlobalAveragePooling2D if len(shape) == 3 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(shape)
    x = pool()(conv(4, 3, padding="same", activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def pointwise_model(shape, n_channels=2, *, activation=None, seed=0):
    """F(x)_p = W^T x_p + c at every pixel (a 1x1 conv, 2D or 3D by the rank of shape). Returns (model, W, c)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(shape[-1], n_channels)).astype(np.float32)
    bias = rng.normal(size=(n_channels,)).astype(np.float32)
    conv = (keras.layers.Conv2D if len(shape) == 3 else keras.layers.Conv3D)(n_channels, 1, activation=activation)
    inputs = keras.Input(shape)
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([weights.reshape((1,) * (len(shape) - 1) + weights.shape), bias])
    return model, weights, bias


def tiny_unet(shape=(8, 8, 1), n_channels=1, *, activation="sigmoid", positive=False, seed=0):
    """A two-level U-Net (conv, pool, conv, upsample, skip concatenation, 1x1 conv head), 2D or 3D.

    ``positive``: every kernel non-negative and every bias 0 but the head's (-1 per channel), so each output
    is a non-decreasing function of every input pixel near it.
    """
    keras.utils.set_random_seed(seed)
    two_d = len(shape) == 3
    conv = keras.layers.Conv2D if two_d else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if two_d else keras.layers.MaxPooling3D
    up = keras.layers.UpSampling2D if two_d else keras.layers.UpSampling3D
    inputs = keras.Input(shape)
    skip = conv(4, 3, padding="same", activation="relu")(inputs)
    deep = conv(4, 3, padding="same", activation="relu")(pool(2)(skip))
    merged = keras.layers.Concatenate()([skip, up(2)(deep)])
    features = conv(4, 3, padding="same", activation="relu", name="features")(merged)
    head = conv(n_channels, 1, activation=activation, name="head")
    model = keras.Model(inputs, head(features))
    if positive:
        for layer in model.layers:
            if layer.weights:
                kernel, bias = layer.get_weights()
                layer.set_weights([np.abs(kernel), np.zeros_like(bias) - (layer is head)])
    return model
