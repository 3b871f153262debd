"""What every method shares: the gradient engine, the explained output, precision, quadrature, adaptive steps.

The engines and the modules that read a model's graph (engine, activations, forward, guided,
geometry, graph_walk, head, output, precision) import TensorFlow/Keras; ``spec``, ``plan``,
``quadrature``, ``adaptive`` and ``baselines`` are numpy only, so method classes import without it.
"""

#: The explained outputs that are not a layer name.
OUTPUT_LOGITS = "logits"
OUTPUT_PROBABILITIES = "probabilities"
