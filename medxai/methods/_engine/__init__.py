"""The machinery every path method shares: the gradient engine, the explained output, precision, quadrature, adaptive steps, baselines."""
