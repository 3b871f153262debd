"""Which classes of an image are explained: the config's ``targets`` against the model's scores.

``predicted`` is what the model calls positive: the top class of a softmax
(or single-label) model, every class at or over 0.5 for a multi-label sigmoid
model. ``{top_k: K}`` and ``{threshold: T}`` say it explicitly; ``label`` takes the
manifest's labels (one, or several as ``2;3;11``); ``all`` every class; a list
names classes by index or by ``model.class_names``.

A segmentation model (a dense output) takes ``{region: ..., channels: [...], reduce: ...}``:
each listed channel's region (predicted, its connected components, its border, the
manifest's mask, or the whole channel; see :mod:`medxai.regions`) is one target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medxai.errors import SettingError
from medxai.regions import Region, ResolvedRegion, components, predicted_mask

__all__ = [
    "TargetRule",
    "target_rule",
    "predicted_classes",
    "predicted_channels",
    "target_tag",
    "region_key",
    "method_target",
    "MULTI_LABEL_THRESHOLD",
]

#: What one index row explains: a class index, or a region of a segmentation model's output.
Target = int | ResolvedRegion

#: The probability at which a multi-label (sigmoid) model calls a class positive.
MULTI_LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class TargetRule:
    """A validated ``targets`` setting for one model.

    Attributes:
        kind: ``"predicted"``, ``"label"``, ``"all"``, ``"top_k"``, ``"threshold"``, ``"list"`` or
            ``"region"`` (a segmentation model).
        classes: the listed classes (``kind == "list"``), or the channels (``kind == "region"``).
        top_k: K of ``{top_k: K}``.
        threshold: T of ``{threshold: T}``.
        multi_label: the model scores classes independently (sigmoid outputs), so
            ``predicted`` means every class over :data:`MULTI_LABEL_THRESHOLD`.
    """

    kind: str
    classes: tuple[int, ...] = ()
    top_k: int = 1
    threshold: float = MULTI_LABEL_THRESHOLD
    multi_label: bool = False
    region: str = ""
    reduce: str = "sum"
    components: int | None = None

    def regions(
        self, probabilities: np.ndarray, activation: str, manifest: np.ndarray | None = None
    ) -> list[ResolvedRegion]:
        """The regions to explain for one image of a segmentation model (``kind == "region"``).

        Args:
            probabilities: ``(*output_spatial, channels)`` the model's probabilities for the image.
            activation: the head's squashing function (``softmax``: argmax; a sigmoid: >= 0.5).
            manifest: the image's mask from ``data.region_column`` on the output grid (``region: manifest``).

        Returns:
            One region per channel (``connected``: one per component, largest first, at most
            ``components``); a region may be empty (its rows are skipped, with the reason).
        """
        found: list[ResolvedRegion] = []
        for channel in self.classes:
            if self.region == "manifest":
                if manifest is None:
                    raise ValueError("targets: region: manifest, but this image has no mask in data.region_column")
                found.append(ResolvedRegion(channel, np.asarray(manifest, dtype=bool), "manifest", self.reduce))
            elif self.region == "connected":
                parts = components(predicted_mask(probabilities, channel, activation, logits=False))
                parts = parts[: self.components] if self.components is not None else parts
                found.extend(ResolvedRegion(channel, m, "connected", self.reduce, k + 1) for k, m in enumerate(parts))
                if not parts:  # nothing predicted: one empty region says so in a skipped row
                    empty = np.zeros(probabilities.shape[:-1], dtype=bool)
                    found.append(ResolvedRegion(channel, empty, "connected", self.reduce))
            else:
                found.append(Region(channel, self.region, self.reduce).resolve(probabilities, activation, False))
        return found

    def select(self, scores: np.ndarray, labels: Sequence[int]) -> list[int]:
        """The classes to explain for one image (its probabilities ``scores`` and manifest ``labels``).

        Raises:
            ValueError: ``label`` with an image that has no label, or a label out of range.
        """
        n = scores.shape[-1]
        if self.kind == "predicted":
            return predicted_classes(scores, self.multi_label)
        if self.kind == "all":
            return list(range(n))
        if self.kind == "top_k":
            order = np.argsort(-scores, kind="stable")
            return [int(c) for c in order[: self.top_k]]
        if self.kind == "threshold":
            return [int(c) for c in np.flatnonzero(scores >= self.threshold)]
        if self.kind == "label":
            if not labels:
                raise ValueError("targets: label, but this image has no label in the manifest")
            bad = [c for c in labels if not 0 <= c < n]
            if bad:
                raise ValueError(f"label {bad[0]} is out of range: the model has {n} classes (0..{n - 1})")
            return list(labels)
        return list(self.classes)


def predicted_classes(scores: np.ndarray, multi_label: bool) -> list[int]:
    """What the model calls positive: every class at or over 0.5 (multi-label), else the top class."""
    if multi_label:
        return [int(c) for c in np.flatnonzero(scores >= MULTI_LABEL_THRESHOLD)]
    return [int(np.argmax(scores))]


def target_rule(
    targets: Any, n_classes: int, class_names: Sequence[str] | None = None, *, multi_label: bool = False
) -> TargetRule:
    """Checks a config's ``targets`` against the model and returns its rule.

    Args:
        targets: the validated setting: a word, a ``TopKTargets``/``ThresholdTargets``
            (anything with ``top_k``/``threshold``) or a tuple of indices and names.
        n_classes: the model's class count (2 for a one-unit sigmoid model).
        class_names: ``model.class_names``, which list entries may name.
        multi_label: the model's head is a sigmoid over several outputs.

    Raises:
        SettingError: an index out of range, an unknown name, ``top_k`` above the class
            count, or class names that do not match the model; ``key`` names the setting
            (``targets`` or ``model.class_names``).
    """
    if class_names is not None and len(class_names) != n_classes:
        raise SettingError(
            "model.class_names",
            f"has {len(class_names)} names but the model has {n_classes} classes"
            + (" (a one-unit sigmoid model has 2: the negative, then the positive)" if n_classes == 2 else ""),
            sep=" ",
        )
    if hasattr(targets, "region"):
        channels = range(1, n_classes) if targets.channels is None else targets.channels
        chosen = tuple(class_index(c, n_classes, class_names, "targets.channels") for c in channels)
        return TargetRule(
            "region",
            classes=chosen,
            multi_label=multi_label,
            region=targets.region,
            reduce=targets.reduce,
            components=targets.components,
        )
    if isinstance(targets, str):
        return TargetRule(targets, multi_label=multi_label)
    if hasattr(targets, "top_k"):
        if targets.top_k > n_classes:
            raise SettingError("targets", f"top_k is {targets.top_k} but the model has {n_classes} classes")
        return TargetRule("top_k", top_k=int(targets.top_k), multi_label=multi_label)
    if hasattr(targets, "threshold"):
        return TargetRule("threshold", threshold=float(targets.threshold), multi_label=multi_label)
    return TargetRule("list", classes=tuple(class_index(c, n_classes, class_names, "targets") for c in targets))


def predicted_channels(probabilities: np.ndarray, activation: str) -> list[int]:
    """The channels a segmentation model predicts somewhere in an image (``(*spatial, channels)`` probabilities)."""
    channels = probabilities.shape[-1]
    return [c for c in range(channels) if predicted_mask(probabilities, c, activation, logits=False).any()]


def target_tag(target: Target) -> str:
    """The file-name part of a target: ``c2`` for a class, ``c1_predicted``, ``c1_connected2`` for regions."""
    if isinstance(target, ResolvedRegion):
        return f"c{target.channel}_{target.name}{target.component or ''}"
    return f"c{target}"


def method_target(target: Target) -> int | Region:
    """What a method explains for a row's target: the class, or the region with its mask held fixed."""
    if isinstance(target, ResolvedRegion):
        return Region(target.channel, target.mask, target.reduce)
    return target


def region_key(region: ResolvedRegion) -> tuple[str, str, str]:
    """``(channel, region, component)`` of a region as the index writes them (component "" unless ``connected``).

    With the row's image id and method it is :func:`medxai.io.index.map_key`'s key of the region's map.

    Example:
        >>> region_key(ResolvedRegion(1, np.ones((2, 2), bool), "connected", component=2))
        ('1', 'connected', '2')
    """
    return str(region.channel), region.name, str(region.component) if region.component else ""


def class_index(value: int | str, n_classes: int, class_names: Sequence[str] | None, key: str) -> int:
    """A class given by index or name, as an index.

    Raises:
        SettingError: out of range, or a name that is not in ``class_names`` (its ``key`` is ``key``).
    """
    if isinstance(value, str):
        if class_names is None:
            raise SettingError(key, f"{value!r} is a class name, but model.class_names is not set")
        if value not in class_names:
            raise SettingError(key, f"unknown class name {value!r} (known: {', '.join(class_names)})")
        return list(class_names).index(value)
    if not 0 <= int(value) < n_classes:
        raise SettingError(
            key, f"class {value} is out of range: the model has {n_classes} classes (0..{n_classes - 1})"
        )
    return int(value)
