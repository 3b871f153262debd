"""The model-randomisation sanity check (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim (2018), "Sanity Checks for
Saliency Maps", NeurIPS, arXiv:1810.03292. Weights are randomised layer by layer
from the top (output) down ("cascading"), each layer re-initialised with its own
initializers as in the paper; a method whose maps barely change while the model
loses everything it learned explains the input, not the model, and fails the
check.

The paper sets no pass threshold. medxai's convention: a method passes when,
after every layer is randomised, both mean Spearman correlations (signed and of
absolute values, see :func:`cascading_randomisation`) are below 0.5 in
magnitude (:data:`DEFAULT_THRESHOLD`); a correlation that cannot be computed
(a constant map) gives the verdict ``"undefined"``, never PASS or FAIL.

The metric itself is :func:`medxai.metrics.rank_correlation`; this module needs Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from medxai.errors import SanityCheckError
from medxai.metrics.scores import rank_correlation

#: medxai's pass threshold on |Spearman| after full randomisation (a convention: the paper sets none).
DEFAULT_THRESHOLD = 0.5

#: ``explain(model, method) -> (N, *spatial, C)`` signed attributions of the fixed images and classes.
Explain = Callable[[keras.Model, str], np.ndarray]


@dataclass
class _Cell:
    """One method's figures at one randomisation step, over the seeds."""

    signed: list[float] = field(default_factory=list)
    abs: list[float] = field(default_factory=list)
    undefined: int = 0


@dataclass(frozen=True)
class SanityStep:
    """Rank correlations after randomising the layers from the top down to ``layer``.

    Attributes:
        method: The method's name.
        step: 1 = the top layer randomised, up to the number of weighted layers.
        layer: The last layer randomised (``outer/inner`` inside a nested model).
        spearman: Mean over seeds of the mean over images of the Spearman
            correlation of the signed attributions summed over channels.
        spearman_sd: Its standard deviation over seeds (NaN for one seed).
        spearman_abs: The same for the absolute attributions summed over channels.
        spearman_abs_sd: Its standard deviation over seeds.
        undefined: (seed, image) pairs whose correlation was undefined (a
            constant map) and left out of the means.
    """

    method: str
    step: int
    layer: str
    spearman: float
    spearman_sd: float
    spearman_abs: float
    spearman_abs_sd: float
    undefined: int = 0


@dataclass
class SanityResult:
    """The steps of every method and the methods that failed during the check."""

    layers: list[str]
    seeds: tuple[int, ...]
    steps: list[SanityStep] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def verdict(self, method: str, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        """The verdict of one method after full randomisation.

        ``"FAIL"`` when a defined final correlation (signed or absolute) is
        ``>= threshold`` in magnitude, ``"error"`` when the method failed during
        the check, ``"undefined"`` when a final correlation is NaN, else ``"PASS"``.
        """
        own = [s for s in self.steps if s.method == method]
        final = own[-1] if own and own[-1].step == len(self.layers) else None
        signed = final.spearman if final else float("nan")
        absolute = final.spearman_abs if final else float("nan")
        defined = [abs(v) for v in (signed, absolute) if np.isfinite(v)]
        if method in self.errors:
            state = "error"
        elif any(v >= threshold for v in defined):
            state = "FAIL"
        elif len(defined) < 2:
            state = "undefined"
        else:
            state = "PASS"
        return {
            "verdict": state,
            "passed": {"PASS": True, "FAIL": False}.get(state),
            "final_spearman": signed,
            "final_spearman_sd": final.spearman_sd if final else float("nan"),
            "final_spearman_abs": absolute,
            "final_spearman_abs_sd": final.spearman_abs_sd if final else float("nan"),
            "threshold": threshold,
            "seeds": len(self.seeds),
            "error": self.errors.get(method, ""),
        }


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the layers with weights, from the output down to the input.

    A nested model (e.g. a Sequential or a pretrained backbone inside a
    functional model) is entered: its layers appear as ``outer/inner``.
    """
    names = []
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model) and layer.layers:
            names += [f"{layer.name}/{inner}" for inner in weighted_layers(layer)]
        elif layer.weights:
            names.append(layer.name)
    return names


def _layer(model: keras.Model, path: str) -> keras.layers.Layer:
    layer: Any = model
    for part in path.split("/"):
        try:
            layer = layer.get_layer(part)
        except (ValueError, AttributeError) as err:
            raise SanityCheckError(f"layer {path!r} not found in model {model.name!r}: {err}") from err
    return layer


def _unseeded(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer of ``layer``'s config whose initializers draw from the global seed, not a fixed one.

    An initializer built with ``seed=`` gives the same weights whatever ``set_random_seed`` says:
    every seed of the check would then randomise to one and the same model.
    """
    config = layer.get_config()
    for key, value in config.items():
        inner = value.get("config") if key.endswith("_initializer") and isinstance(value, dict) else None
        if isinstance(inner, dict) and inner.get("seed") is not None:
            inner["seed"] = None
    return layer.__class__.from_config(config)


def _clone(model: keras.Model, unseeded: bool = False) -> keras.Model:
    try:
        if unseeded:
            return keras.models.clone_model(model, clone_function=_unseeded, recursive=True)
        return keras.models.clone_model(model)
    except Exception as err:
        raise SanityCheckError(
            f"cannot copy model {model.name!r} for the randomisation check ({type(err).__name__}: {err}); "
            "a subclassed model needs get_config/from_config"
        ) from err


def _fresh(model: keras.Model, seed: int) -> keras.Model:
    """A copy of ``model`` with every layer freshly initialised by its own initializers, drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    return _clone(model, unseeded=True)


def _randomised(model: keras.Model, fresh: keras.Model, layers: Sequence[str]) -> keras.Model:
    copy = _clone(model)
    copy.set_weights(model.get_weights())
    for name in layers:
        _layer(copy, name).set_weights(_layer(fresh, name).get_weights())
    return copy


def randomised_copy(model: keras.Model, layers: Sequence[str], seed: int = 0) -> keras.Model:
    """A copy of ``model`` whose named layers are re-initialised, the rest trained.

    Each named layer gets the weights a fresh copy of it draws from its own
    initializers (Adebayo et al. 2018): kernels from e.g. Glorot, biases and
    BatchNormalization's moving mean 0, its moving variance and scale 1, so
    every statistic stays valid. Calls ``keras.utils.set_random_seed(seed)``.

    Args:
        model: A functional or Sequential Keras model (``model`` is not changed).
        layers: Names from :func:`weighted_layers` (``outer/inner`` in nested models).
        seed: Seed of the fresh initialisation.

    Raises:
        SanityCheckError: The model cannot be cloned, or a name is not one of its layers.
    """
    return _randomised(model, _fresh(model, seed), layers)


def _channel_maps(attributions: Any, method: str, shape: tuple[int, ...] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    values = np.asarray(attributions, dtype=np.float64)
    if values.ndim < 3 or (shape is not None and values.shape != shape):
        want = "(N, *spatial, C)" if shape is None else str(shape)
        raise ValueError(f"{method}: explain must return attributions shaped {want}, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{method}: attributions contain NaN or infinite values")
    return [(a.sum(axis=-1), np.abs(a).sum(axis=-1)) for a in values]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")


def cascading_randomisation(
    model: keras.Model,
    explain: Explain,
    methods: Sequence[str],
    *,
    seeds: Sequence[int] = (0,),
) -> SanityResult:
    """Rank correlations between the trained model's maps and those of ever more randomised copies.

    For each seed and each step ``k``, a copy of the model has its top ``k``
    weighted layers re-initialised (:func:`randomised_copy`) and every method
    explains the same images again. Per image, two Spearman correlations with
    the trained model's attributions (Adebayo et al. 2018 report both):
    ``spearman`` of the signed attributions summed over channels, and
    ``spearman_abs`` of the absolute attributions summed over channels (the
    ranking medxai's default heatmap, ``polarity: absolute, reduce: abs_sum``,
    shows). A constant map makes a correlation undefined; it is left out of the
    means and counted in ``undefined``.

    A method that raises (on the trained model or on any copy) is recorded in
    :attr:`SanityResult.errors` and left out of the later steps; the other
    methods go on.

    Args:
        model: The trained model.
        explain: ``explain(model, method)`` returns the method's signed
            attributions ``(N, *spatial, C)`` on ``model`` for a fixed set of
            images and classes (model input geometry).
        methods: The method names to check.
        seeds: Seeds of the fresh initialisation; the figures are the mean
            (and standard deviation) over seeds.

    Returns:
        The steps, top layer first, and per-method errors.

    Raises:
        SanityCheckError: The model cannot be copied (e.g. a subclassed model).
    """
    import tensorflow as tf

    layers = weighted_layers(model)
    result = SanityResult(layers, tuple(int(s) for s in seeds))
    reference: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for method in methods:
        try:
            values = np.asarray(explain(model, method))
            reference[method] = _channel_maps(values, method, None)
            shapes[method] = values.shape
        except Exception as err:
            result.errors[method] = f"trained model: {type(err).__name__}: {err}"
    # per method and step: the seeds' signed and absolute means, and the undefined pairs
    figures: dict[str, list[_Cell]] = {m: [_Cell() for _ in layers] for m in reference}
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # every copy is a new model, so TF warns about retracing: expected here
    try:
        for seed in result.seeds:
            fresh = _fresh(model, seed)
            for step in range(1, len(layers) + 1):
                live = [m for m in reference if m not in result.errors]
                if not live:
                    break
                copy = _randomised(model, fresh, layers[:step])
                for method in live:
                    try:
                        maps = _channel_maps(explain(copy, method), method, shapes[method])
                        pairs = [
                            (rank_correlation(a[0], b[0]), rank_correlation(a[1], b[1]))
                            for a, b in zip(reference[method], maps)
                        ]
                    except Exception as err:
                        where = f"seed {seed}, step {step} ({layers[step - 1]})"
                        result.errors[method] = f"{where}: {type(err).__name__}: {err}"
                        continue
                    cell = figures[method][step - 1]
                    cell.signed.append(_finite_mean([p[0] for p in pairs]))
                    cell.abs.append(_finite_mean([p[1] for p in pairs]))
                    cell.undefined += sum(1 for p in pairs if not (np.isfinite(p[0]) and np.isfinite(p[1])))
    finally:
        logger.setLevel(level)
    for method, per_step in figures.items():
        for step, cell in enumerate(per_step, start=1):
            if not cell.signed:
                continue
            mean, sd = _mean_sd(cell.signed)
            mean_abs, sd_abs = _mean_sd(cell.abs)
            result.steps.append(SanityStep(method, step, layers[step - 1], mean, sd, mean_abs, sd_abs, cell.undefined))
    return result


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
