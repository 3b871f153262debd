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


def tiny_unet(shape=(16, 16, 1), seed=0) -> keras.Model:
    """A two-level U-Net with a one-unit sigmoid head (a binary segmentation model)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(a))
    merged = keras.layers.Concatenate()([a, keras.layers.UpSampling2D()(b)])
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(merged))
