"""A custom Keras layer for the model-loading tests, deliberately NOT registered with
``keras.saving.register_keras_serializable``: a model saved with it loads only when the
layer is named in ``custom_objects``."""

from __future__ import annotations

import keras


class TimesFactor(keras.layers.Layer):
    """Multiplies its input by ``factor``."""

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor}
