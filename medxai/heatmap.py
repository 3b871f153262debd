"""From signed attributions to a [0, 1] heatmap: the one normalisation policy.

Steps, in this order:

1. **polarity** picks the evidence: ``absolute`` keeps signed values (their
   magnitude counts), ``positive`` keeps ``max(a, 0)`` (evidence for the class),
   ``negative`` keeps ``max(-a, 0)`` (evidence against it);
2. **reduce** folds the channel axis: ``abs_sum`` = sum of magnitudes,
   ``sum`` = magnitude of the signed sum (channels may cancel), ``max_abs`` =
   largest magnitude (AUCMEDI's signed max drops negative evidence; this does
   not), ``l2`` = Euclidean norm;
3. **clip** outliers (optional): by value percentile (``mode="value"``) or by
   cumulative attribution mass (``mode="mass"``, as Captum's ``outlier_perc``
   and the Keras IG example: the largest values that together carry the top
   ``100 - high`` percent of the mass are clipped);
4. **normalise**: min-max to [0, 1], so 1 marks the most important place; a
   constant map becomes all zeros, never NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, ConfigDict, field_validator, model_validator
from pydantic.dataclasses import dataclass

from medxai._validation import (
    Number,
    SpecMixin,
    library_errors,
    one_of,
    optional_section,
    validation_error,
)

REDUCTIONS = ("abs_sum", "sum", "max_abs", "l2")
POLARITIES = ("absolute", "positive", "negative")
CLIP_MODES = ("value", "mass")

# One schema for the library and the study config (whose ``heatmap:`` section *is* a
# HeatmapPolicy): each check has one message, after the config's dotted key
# (``heatmap.reduce: ...``) or, raised as a ValueError when a policy is built directly,
# after the field's name (``reduce: ...``; medxai._validation).
_SETTINGS = ConfigDict(extra="forbid")


def _one_of(options: tuple[str, ...]) -> Any:
    """Case-insensitive choice: ``"expected one of a, b, got 'x'"``."""
    return BeforeValidator(one_of(*options))


@library_errors
@dataclass(frozen=True, config=_SETTINGS)
class ClipSpec(SpecMixin):
    """Outlier clipping: keep values between the ``low`` and ``high`` percentiles.

    Attributes:
        mode: ``"value"`` (percentiles of the values) or ``"mass"`` (percentiles of
            the cumulative attribution mass, smallest values first).
        low: Lower percentile in [0, 100); values below are raised to it.
        high: Upper percentile in (low, 100]; values above are lowered to it.

    Also the study config's ``heatmap.clip:`` section (``medxai.pipeline.config.ClipSection``).

    Raises:
        ValueError: a mode that is not ``value`` or ``mass``, or not ``0 <= low < high <= 100``.
    """

    mode: Annotated[Literal["value", "mass"], _one_of(CLIP_MODES)] = "value"
    low: Number = 0.0
    high: Number = 99.5

    @model_validator(mode="after")
    def _check_range(self) -> ClipSpec:
        if not 0 <= self.low < self.high <= 100:
            raise validation_error(f"expected 0 <= low < high <= 100, got low={self.low:g}, high={self.high:g}")
        return self


@library_errors
@dataclass(frozen=True, config=_SETTINGS)
class HeatmapPolicy(SpecMixin):
    """How signed attributions become a [0, 1] map (recorded with every map).

    Also the study config's ``heatmap:`` section (``medxai.pipeline.config.HeatmapSection``).
    ``reduce``, ``polarity`` and ``clip.mode`` are read case-insensitively; ``clip`` may be
    None, a :class:`ClipSpec` or a mapping of its fields.
    """

    reduce: Annotated[Literal["abs_sum", "sum", "max_abs", "l2"], _one_of(REDUCTIONS)] = "abs_sum"
    polarity: Annotated[Literal["absolute", "positive", "negative"], _one_of(POLARITIES)] = "absolute"
    clip: ClipSpec | None = None

    _check_clip = field_validator("clip", mode="before")(
        optional_section(ClipSpec, "null or {mode: value|mass, low: .., high: ..}", switch=False)
    )

    @classmethod
    def from_value(cls, value: HeatmapPolicy | Mapping[str, Any] | None) -> HeatmapPolicy:
        """Build a policy from None (defaults), a mapping or a policy."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"reduce", "polarity", "clip"}
            if unknown:
                raise ValueError(f"unknown heatmap option(s): {', '.join(sorted(unknown))}")
            return cls(**value)
        raise ValueError(f"heatmap must be None, a dict or a HeatmapPolicy, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_polarity(attributions: np.ndarray, polarity: str = "absolute") -> np.ndarray:
    """Keep the evidence the polarity asks for (see the module docstring)."""
    if polarity == "absolute":
        return attributions
    if polarity == "positive":
        return np.maximum(attributions, 0)
    if polarity == "negative":
        return np.maximum(-attributions, 0)
    raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")


def reduce_channels(attributions: np.ndarray, reduce: str = "abs_sum") -> np.ndarray:
    """Fold the last (channel) axis into a non-negative map.

    Example:
        >>> reduce_channels(np.array([[[1.0, -3.0]]]), "sum").tolist()
        [[2.0]]
    """
    if reduce == "abs_sum":
        return np.abs(attributions).sum(axis=-1)
    if reduce == "sum":
        return np.abs(attributions.sum(axis=-1))
    if reduce == "max_abs":
        return np.abs(attributions).max(axis=-1)
    if reduce == "l2":
        return np.sqrt(np.square(attributions).sum(axis=-1))
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")


def clip_outliers(values: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """Clip a non-negative map between two value or mass percentiles."""
    if clip.mode == "value":
        low, high = np.percentile(values, [clip.low, clip.high])
    else:
        ordered = np.sort(values, axis=None)
        total = ordered.sum()
        if total <= 0:
            return values
        mass = np.cumsum(ordered) / total
        last = ordered.size - 1
        low = ordered[min(int(np.searchsorted(mass, clip.low / 100.0)), last)]
        high = ordered[min(int(np.searchsorted(mass, clip.high / 100.0)), last)]
    return np.clip(values, low, high)


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] as float32; a constant map gives zeros.

    Example:
        >>> normalize(np.array([2.0, 4.0, 6.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("the map contains NaN or infinite values")
    low, high = values.min(), values.max()
    if high - low <= 0:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def to_heatmap(attributions: np.ndarray, policy: HeatmapPolicy | Mapping[str, Any] | None = None) -> np.ndarray:
    """Turn one image's attributions ``(*spatial, C)`` into a ``(*spatial)`` map in [0, 1].

    Args:
        attributions: Signed attributions of one image, channel axis last.
        policy: A :class:`HeatmapPolicy`, a dict of its fields, or None for the defaults.

    Returns:
        float32 map, 1 at the most important place.

    Example:
        >>> to_heatmap(np.array([[[0.0], [-2.0]], [[1.0], [4.0]]])).tolist()
        [[0.0, 0.5], [0.25, 1.0]]
    """
    return normalize(_map_values(attributions, HeatmapPolicy.from_value(policy)))


def _map_values(attributions: np.ndarray, policy: HeatmapPolicy) -> np.ndarray:
    """The map before its min-max normalisation: polarity, channel reduction, clipping (float64)."""
    attributions = np.asarray(attributions, dtype=np.float64)
    if attributions.ndim < 2:
        raise ValueError(
            f"attributions must be (*spatial, channels) with at least one spatial axis, got shape {attributions.shape}"
        )
    if not np.all(np.isfinite(attributions)):
        raise ValueError("attributions contain NaN or infinite values")
    values = reduce_channels(apply_polarity(attributions, policy.polarity), policy.reduce)
    if policy.clip is not None:
        values = clip_outliers(values, policy.clip)
    return values


def heatmap_sd(
    attributions: np.ndarray, sd: np.ndarray, policy: HeatmapPolicy | Mapping[str, Any] | None = None
) -> np.ndarray:
    """The SD map beside :func:`to_heatmap`'s map: in the map's units, so ``map +- sd`` reads directly.

    ``sd`` is the per-value standard deviation of the *signed* attributions ``(*spatial, C)``
    (over a method's samples, baselines or seed groups). Its channels are folded the way that
    bounds the SD of the map's pre-normalisation value (polarity, absolute value and clipping
    never widen a spread, being 1-Lipschitz): ``abs_sum`` and ``sum`` add the channels' SDs,
    ``max_abs`` and ``l2`` take their root sum of squares (one channel: the SD itself). The
    result is then divided by the same ``max - min`` as the map in its min-max normalisation,
    i.e. it is the SD *after* the [0, 1] normalisation's scaling (not shifted: an SD has no
    offset). A constant map (normalised to zeros) gives an SD of zeros.

    Returns:
        float32 ``(*spatial)``, >= 0.

    Example:
        >>> heatmap_sd(np.array([[[0.0]], [[4.0]]]), np.array([[[1.0]], [[2.0]]])).tolist()
        [[0.25], [0.5]]
    """
    policy = HeatmapPolicy.from_value(policy)
    values = _map_values(attributions, policy)
    sd = np.abs(np.asarray(sd, dtype=np.float64))
    if sd.shape != np.shape(attributions):
        raise ValueError(f"sd {sd.shape} and attributions {np.shape(attributions)} differ in shape")
    if not np.all(np.isfinite(sd)):
        raise ValueError("sd contains NaN or infinite values")
    folded = sd.sum(axis=-1) if policy.reduce in ("abs_sum", "sum") else np.sqrt(np.square(sd).sum(axis=-1))
    spread = float(values.max() - values.min())
    if spread <= 0:
        return np.zeros(folded.shape, dtype=np.float32)
    return (folded / spread).astype(np.float32)
