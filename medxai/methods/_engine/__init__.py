"""What every method shares: the gradient engine, the explained output, precision, quadrature, adaptive steps.

Only :mod:`~medxai.methods._engine.engine`, :mod:`~medxai.methods._engine.output` and
:mod:`~medxai.methods._engine.precision` import TensorFlow/Keras; the rest is numpy.
"""

#: The explained outputs that are not a layer name.
OUTPUT_LOGITS = "logits"
OUTPUT_PROBABILITIES = "probabilities"
