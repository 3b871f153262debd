"""The method contract: ``XAIMethod`` (the AUCMEDI plugin pattern, made strict).

A method is built on a model once and then explains any number of images:

* :meth:`XAIMethod.attribute` returns signed raw attributions for a batch
  (abstract: a subclass that forgets it cannot be instantiated);
* :meth:`XAIMethod.compute_heatmap` turns one image into a [0, 1] map through
  the shared :mod:`medxai.heatmap` policy.

:class:`PathMethod` is the family of methods that the gradient engine runs
directly (gradient, Integrated Gradients, SmoothGrad): they only say *what* to
integrate, as a :class:`medxai.methods._engine.engine.PathPlan`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from medxai.heatmap import HeatmapPolicy, to_heatmap
from medxai.methods._engine import OUTPUT_LOGITS
from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.quadrature import MAX_POINTS
from medxai.methods._engine.spec import OutputSpec
from medxai.methods._engine.uncertainty import Uncertainty, max_sensitivity, uncertainty_problems

if TYPE_CHECKING:  # importing a method class starts no TensorFlow; building one on a model does
    import keras

    from medxai.methods._engine.engine import GradientEngine
    from medxai.methods._engine.targets import TargetLike, Targets


@dataclass(frozen=True)
class Explanation:
    """Attributions of a batch with their completeness figures where defined.

    Attributes:
        attributions: ``(N, *spatial, C)`` float32 signed attributions.
        delta: ``(N,)`` completeness delta ``sum(a_i) - (F(x_i) - F(b_i))``, or None.
        gap: ``(N,)`` ``F(x_i) - F(b_i)`` (mean over baselines), or None.
        evaluations: ``(N,)`` gradient evaluations (model rows) used per image.
        steps: ``(N,)`` path points per baseline used per image (path methods), or None.
        warnings: ``(N,)`` strings, empty where all is well (e.g. an adaptive IG
            that reached ``max_steps`` before its tolerance), or None.
        sd: ``(N, *spatial, C)`` float32 per-value standard deviation of the signed attributions
            over the method's samples, baselines or seed groups (zeros for a deterministic
            method), or None when not computed (``uncertainty`` off).
        stability: ``(N,)`` max-sensitivity of each map under small input noise
            (:func:`~medxai.methods._engine.uncertainty.max_sensitivity`), or None.
        stability_relative: ``(N,)`` the same largest change over the map's own norm (free of the
            method's units), or None.
    """

    attributions: np.ndarray
    delta: np.ndarray | None = None
    gap: np.ndarray | None = None
    evaluations: np.ndarray | None = None
    steps: np.ndarray | None = None
    warnings: np.ndarray | None = None
    sd: np.ndarray | None = None
    stability: np.ndarray | None = None
    stability_relative: np.ndarray | None = None

    @property
    def relative_delta(self) -> np.ndarray | None:
        """``|delta| / |F(x) - F(b)|`` per image (0 where both are 0, inf where only the gap is)."""
        if self.delta is None or self.gap is None:
            return None
        delta, gap = np.abs(self.delta), np.abs(self.gap)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(delta == 0, 0.0, delta / gap).astype(np.float64)


#: ``fill`` of the perturbation methods: each image's own mean value.
FILL_MEAN = "mean"

#: Upper bounds of the counts whose cost grows with them: a typo such as ``steps: 1000000000`` is
#: refused by ``medxai validate`` instead of exhausting memory or time.
MAX_COUNTS: dict[str, int] = {
    "steps": MAX_POINTS, "max_steps": MAX_POINTS, "samples": 100_000, "n_baselines": 1024,
    "cells": 4096,
}  # fmt: skip


def _check_positive_int(name: str, value: Any, maximum: int | None = None) -> int:
    maximum = MAX_COUNTS.get(name) if maximum is None else maximum
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return int(value)


def _finite(value: Any) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value)
    )


#: Parameters several methods share, with the range ``medxai validate`` checks before any model is loaded
#: (each method checks its own parameters again, fully, when it is built).
_NUMBER_RULES: dict[str, tuple[str, Any]] = {
    "noise": ("a number >= 0", lambda v: _finite(v) and v >= 0),
    "tolerance": ("a number in (0, 1)", lambda v: _finite(v) and 0 < v < 1),
    "fraction": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    "max_dist": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    "max_sigma": ("a number > 0 or null", lambda v: v is None or (_finite(v) and v > 0)),
    "blur_sigma": ("a number > 0 or null", lambda v: v is None or (_finite(v) and v > 0)),
    "kernel_width": ("a number > 0", lambda v: _finite(v) and v > 0),
    "ridge": ("a number > 0", lambda v: _finite(v) and v > 0),
    "seed": ("an integer >= 0", lambda v: not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 0),
}


def check_number(name: str, value: Any) -> Any:
    """``value`` when it is in the range of the shared parameter ``name`` (:data:`_NUMBER_RULES`).

    The one rule for the parameter: the method that takes it and ``medxai validate`` both call this.

    Raises:
        ValueError: out of range, naming the parameter and the range.
    """
    expected, ok = _NUMBER_RULES[name]
    if not ok(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_fill(fill: Any) -> float | str:
    """What occluded or switched-off pixels become: a finite number (model input space) or ``"mean"``.

    Raises:
        ValueError: anything else.
    """
    if isinstance(fill, str):
        if fill != FILL_MEAN:
            raise ValueError(f"fill must be a number (in the model's input space) or 'mean', got {fill!r}")
        return fill
    if isinstance(fill, bool) or not isinstance(fill, (int, float, np.integer, np.floating)) or not np.isfinite(fill):
        raise ValueError(f"fill must be a finite number (in the model's input space) or 'mean', got {fill!r}")
    return float(fill)


def check_shared_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The problems of the shared parameters in ``params``: ``[(key, message), ...]``, every one at once.

    Counts (``steps``, ``samples``, ...) must be positive integers up to :data:`MAX_COUNTS`
    (``steps: auto`` is left to the method); numbers must be in range (:func:`check_number`),
    ``fill`` a number or ``"mean"`` (:func:`check_fill`), ``uncertainty`` true, false or a mapping
    (:func:`~medxai.methods._engine.uncertainty.uncertainty_problems`). Nothing is built.

    Example:
        >>> check_shared_params({"steps": 0, "noise": -1, "samples": 5})
        [('steps', 'steps must be a positive integer, got 0'), ('noise', 'noise must be a number >= 0, got -1')]
    """
    problems = uncertainty_problems(params.get(UNCERTAINTY))
    for key, value in params.items():
        if key in MAX_COUNTS and not (key == "steps" and isinstance(value, str)):
            try:
                _check_positive_int(key, value)
            except ValueError as err:
                problems.append((key, str(err)))
        elif key in _NUMBER_RULES or key == "fill":
            try:
                check_fill(value) if key == "fill" else check_number(key, value)
            except ValueError as err:
                problems.append((key, str(err)))
    return problems


def normalize_name(name: str) -> str:
    """Lower case, with ``-`` and spaces as ``_``: ``"Integrated-Gradients"`` -> ``"integrated_gradients"``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


#: The option every method takes, and a config's method entry may set: per-map uncertainty.
UNCERTAINTY = "uncertainty"

#: The constructor options every method takes from :class:`XAIMethod` (the rest are its own parameters).
SHARED_OPTIONS: tuple[str, ...] = (
    "output", "output_kind", "activation", "batch_size", "heatmap", "jit", "precision", "engine",
)  # fmt: skip


class XAIMethod(abc.ABC):
    """Base of every attribution method.

    Args:
        model: A built Keras model (one input, one output).
        output: ``"logits"`` (default), ``"probabilities"`` or a layer name, or an
            :class:`~medxai.methods._engine.spec.OutputSpec` (then ``output_kind`` and
            ``activation`` are its own).
        output_kind: What the model's final output is: ``"auto"`` (proved from the graph,
            else witnessed by its values), ``"logits"`` or ``"probabilities"``.
        activation: ``"softmax"`` or ``"sigmoid"``: how the logits of a model without a
            head become probabilities (None: sigmoid for one unit, softmax for several).
        batch_size: Rows per model call; bounds memory, never changes results.
        heatmap: The :class:`medxai.heatmap.HeatmapPolicy` (or a dict) used by
            :meth:`compute_heatmap`.
        jit: Compile the gradient routine with XLA (measure first: it pays off
            for large models on a GPU, rarely on a CPU).
        precision: ``"float32"`` (default) or ``"mixed"``: the model computes in
            half precision (see :mod:`medxai.methods._engine.precision`; costs completeness).
        engine: A :class:`~medxai.methods._engine.engine.GradientEngine` of the same model and
            settings to share (and its compiled traces) with other methods; by
            default the method builds its own.
        uncertainty: Per-map uncertainty (opt-in): ``True``, or a mapping of ``samples``,
            ``radius`` and ``seed`` of the stability figure
            (:class:`~medxai.methods._engine.uncertainty.Uncertainty`). Then
            :meth:`explain_with_uncertainty` adds to each map the per-value standard deviation of
            its signed attributions over the method's samples (SmoothGrad's noisy copies), random
            baselines (IG with ``n_baselines > 1``) or seed groups (RISE, LIME: 8 disjoint groups
            of the masks/samples, each group's own map), zeros for a deterministic method, and its
            stability (Yeh et al. 2019 max-sensitivity, as Quantus computes it).
    """

    name: str = ""  # the registered name; a named instance of a run sets its own
    aliases: ClassVar[tuple[str, ...]] = ()
    has_delta: ClassVar[bool] = False

    def __init__(
        self,
        model: keras.Model,
        *,
        output: str | OutputSpec = OUTPUT_LOGITS,
        output_kind: str = "auto",
        activation: str | None = None,
        batch_size: int = 32,
        heatmap: HeatmapPolicy | Mapping[str, Any] | None = None,
        jit: bool = False,
        precision: str = "float32",
        engine: GradientEngine | None = None,
        uncertainty: bool | Mapping[str, Any] | Uncertainty = False,
    ):
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.uncertainty: Uncertainty | None = Uncertainty.of(uncertainty)
        self.heatmap = HeatmapPolicy.from_value(heatmap)
        spec = output if isinstance(output, OutputSpec) else OutputSpec(output, output_kind, activation)
        if engine is None:
            from medxai.methods._engine.engine import (
                GradientEngine,  # deferred: TensorFlow starts here
            )

            engine = GradientEngine(model, spec, jit, precision)
        elif not engine.matches(model, spec, jit, precision):
            raise ValueError(
                "engine was built for another model or other settings "
                f"({engine.spec}, jit={engine.jit}, precision={engine.precision!r}); "
                f"this method asks for {spec}, jit={jit}, precision={precision!r}"
            )
        self.engine = engine
        self.model = model
        self.output_spec = spec
        self.output = spec.explain

    @abc.abstractmethod
    def attribute(
        self,
        images: np.ndarray,
        targets: TargetLike,
        *,
        return_delta: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Signed raw attributions for a batch.

        Args:
            images: ``(N, *spatial, C)`` float model inputs (2D or 3D).
            targets: One class index, or one per image; for a segmentation model (a dense
                output), one :class:`medxai.Region` or one per image.
            return_delta: Also return the completeness delta per image (methods
                with ``has_delta`` only).

        Returns:
            ``(N, *spatial, C)`` float32 attributions, or ``(attributions, delta)``.
        """

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The method's name and aliases, as the registry spells them (lower case, ``_`` for ``-``)."""
        return tuple(normalize_name(n) for n in (cls.name, *cls.aliases) if n)

    @classmethod
    def non_negative(cls, params: Mapping[str, Any]) -> bool:
        """Whether the method's attributions are never negative with these parameters.

        Such maps have no sign to choose: heatmap polarity ``positive`` would do
        nothing and ``negative`` would give all zeros, so both are refused.
        """
        return False

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems of the config's parameters found without a model: ``[(key, message), ...]``.

        Called by ``medxai validate`` before any model is loaded; the shared ranges are
        :func:`check_shared_params`'s.
        """
        return check_shared_params(params)

    @classmethod
    def check_polarity(cls, params: Mapping[str, Any], polarity: str) -> None:
        """Raise ValueError when ``polarity`` picks a sign of attributions that have none.

        Called when a method is built and by ``medxai validate`` (with the
        config's parameters, before any model is loaded).
        """
        if polarity != "absolute" and cls.non_negative(params):
            effect = "the map would be all zeros" if polarity == "negative" else "polarity would change nothing"
            raise ValueError(
                f"heatmap polarity {polarity!r} with {cls.name or cls.__name__}: with these settings its "
                f"attributions are never negative, so {effect}; use polarity 'absolute', or a signed setting "
                "of the method (gradient absolute: false; smoothgrad statistic: mean)"
            )

    def _check_polarity(self) -> None:
        """Refuse a heatmap polarity that means nothing for this method's attributions."""
        self.check_polarity(self.params(), self.heatmap.polarity)

    def shared_options(self) -> dict[str, Any]:
        """This method's :data:`SHARED_OPTIONS`, to build a method it is made of on the same engine."""
        return {
            "output": self.output_spec,
            "batch_size": self.batch_size,
            "heatmap": self.heatmap,
            "jit": self.engine.jit,
            "precision": self.engine.precision,
            "engine": self.engine,
        }

    def params(self) -> dict[str, Any]:
        """The method's settings, for provenance (``run.json``, the index)."""
        return {
            "output": self.output,
            "explained": self.engine.explained,
            "batch_size": self.batch_size,
            "jit": self.engine.jit,
            "precision": self.engine.computes_in,
            **({UNCERTAINTY: self.uncertainty.to_dict()} if self.uncertainty is not None else {}),
        }

    def explanation(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The batch's :class:`Explanation`: the method's ``explain`` where it has one, else its attributions alone."""
        explain = getattr(self, "explain", None)
        if explain is not None:
            return explain(images, targets)
        return Explanation(np.asarray(self.attribute(images, targets)))

    def explain_with_uncertainty(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The explanation of a batch with its per-map uncertainty: ``sd`` and ``stability`` filled.

        ``sd`` is the method's own spread (:attr:`Explanation.sd`; zeros for a deterministic
        method); ``stability`` the max-sensitivity of each map
        (:func:`~medxai.methods._engine.uncertainty.max_sensitivity`) over ``uncertainty.samples``
        perturbed copies, explained ``batch_size`` copies at a time, each with its image's target
        (a region's mask held as resolved for the unperturbed image). Without ``uncertainty`` it
        is the plain explanation.
        """
        setting = self.uncertainty
        images, checked = self.engine.check_inputs(images, targets)
        explanation = self.explanation(images, checked)
        if setting is None:
            return explanation
        sd = explanation.sd if explanation.sd is not None else np.zeros_like(explanation.attributions)
        self.uncertainty = None  # the perturbed copies' own spread is not needed
        try:
            stability, relative = max_sensitivity(
                lambda copies, owner: self.explanation(copies, checked[owner]).attributions,
                images,
                explanation.attributions,
                setting,
                self.batch_size,
            )
        finally:
            self.uncertainty = setting
        return replace(explanation, sd=sd.astype(np.float32), stability=stability, stability_relative=relative)

    def as_batch(self, image: np.ndarray) -> np.ndarray:
        """One image ``(*spatial, C)``, ``(1, *spatial, C)`` or, for one channel, ``(*spatial)`` as a batch of one."""
        image = np.asarray(image)
        rank = len(self.engine.input_shape)  # spatial axes + channel
        if image.ndim == rank + 1:
            if image.shape[0] != 1:
                raise ValueError(
                    f"compute_heatmap explains one image; got a batch of {image.shape[0]} (use attribute() for batches)"
                )
            return image
        if image.ndim == rank:
            return image[None]
        if image.ndim == rank - 1 and self.engine.input_shape[-1] == 1:
            return image[None, ..., None]
        raise ValueError(f"expected one image shaped {self.engine.input_shape} (or a batch of one), got {image.shape}")

    def compute_heatmap(self, image: np.ndarray, class_index: TargetLike) -> np.ndarray:
        """The [0, 1] heatmap of one image for one class (the AUCMEDI contract), or for one region.

        Args:
            image: ``(*spatial, C)`` or ``(1, *spatial, C)``.
            class_index: The class explained, or a :class:`medxai.Region` of a segmentation
                model's output (e.g. ``Region(1)``: channel 1's summed logits over its predicted region).

        Returns:
            float32 ``(*spatial)`` map in [0, 1], 1 at the most important place.
        """
        attributions = self.attribute(self.as_batch(image), [class_index])
        return to_heatmap(attributions[0], self.heatmap)


class ExplainingMethod(XAIMethod):
    """Methods that compute an :class:`Explanation`; :meth:`attribute` is its attributions.

    Subclasses implement :meth:`explain` only: the attributions with, where the
    method defines them (``has_delta``), the completeness figures, and the
    gradient evaluations it cost.
    """

    @abc.abstractmethod
    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """Attributions of a batch with their figures (see :class:`Explanation`)."""

    def attribute(
        self,
        images: np.ndarray,
        targets: TargetLike,
        *,
        return_delta: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if return_delta and not self.has_delta:
            raise ValueError(f"{self.name or type(self).__name__} defines no completeness delta")
        explanation = self.explain(images, targets)
        if return_delta:
            if explanation.delta is None:
                raise ValueError(f"{self.name or type(self).__name__} gave no completeness delta for this batch")
            return explanation.attributions, explanation.delta
        return explanation.attributions


class PathMethod(ExplainingMethod):
    """Methods the gradient engine runs from a :class:`~medxai.methods._engine.engine.PathPlan`."""

    @abc.abstractmethod
    def plan(self, images: np.ndarray) -> PathPlan:
        """What to integrate for this (checked, float32) batch."""

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """Attributions with completeness figures (where the method defines them)."""
        images, targets = self.engine.check_inputs(images, targets)
        plan = self.plan(images)
        attributions, sd = self.engine.integrate_with_sd(images, targets, plan, batch_size=self.batch_size)
        delta = gap = None
        if self.has_delta:
            gap = self._gap(images, targets, plan.baselines)
            delta = attributions.reshape(len(images), -1).sum(axis=1, dtype=np.float64) - gap
        n = len(images)
        steps = np.full(n, len(plan.alphas)) if plan.baselines is not None else None
        evaluations = np.full(n, plan.evaluations_per_image)
        return Explanation(
            attributions, delta, gap, evaluations, steps, sd=sd if self.uncertainty is not None else None
        )

    def _gap(self, images: np.ndarray, targets: Targets, baselines: np.ndarray | None) -> np.ndarray:
        """``F(x) - mean_b F(b)`` per image (``baselines``: ``(N, B, *spatial, C)``), for the completeness delta."""
        if baselines is None:
            raise ValueError(f"{self.name or type(self).__name__}: a completeness delta needs baselines")
        at_input = targets.pick(self.engine.predict(images, self.batch_size))
        n_base = baselines.shape[1]
        bases = baselines.reshape((-1, *images.shape[1:]))
        at_base = targets.repeat(n_base).pick(self.engine.predict(bases, self.batch_size)).reshape(-1, n_base)
        return at_input.astype(np.float64) - at_base.mean(axis=1, dtype=np.float64)
