"""Region targets: explain a region of a segmentation model's dense output instead of a class.

A classifier's target is a class index. A segmentation model (a U-Net in 2D or 3D) outputs one
score per output pixel and channel; its target is a :class:`Region`: a channel and a mask over
the output's spatial grid. The explained scalar is the region score

    S(x) = sum_p m_p * F_c(x)_p        (``reduce="sum"``)
    S(x) = sum_p m_p * F_c(x)_p / |m|  (``reduce="mean"``)

of the channel's logits (probabilities with ``output="probabilities"``), the mask ``m`` held
constant while the input changes (Seg-Grad-CAM, Vinogradova et al. 2020, "Towards interpretable
semantic segmentation via gradient-weighted class activation mapping"; the region score of
xplique's segmentation operator). Every method explains ``S`` as it explains a class score.

Masks (computed once per image from the model's own prediction on the unperturbed input):

* ``predicted``: where the model predicts the channel (the argmax over channels of a softmax
  head; the probability at or over 0.5 for a sigmoid head);
* ``connected``: one connected component of the predicted region (full connectivity: 8 in 2D,
  26 in 3D), numbered from 1 by size, largest first (``component``);
* ``border``: the inside border of the predicted region: its pixels with a face neighbour
  outside it (the image's edge is not a border);
* ``all``: the whole channel;
* an array of the output's spatial shape (a ground-truth lesion, any mask): non-zero is inside.

No TensorFlow here: these are plain functions on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

#: The mask names a :class:`Region` takes (``manifest`` is the pipeline's: a mask file per row).
REGION_MASKS = ("predicted", "connected", "border", "all")
#: How the region's output values become one score.
REDUCTIONS = ("sum", "mean")
#: The probability at or over which a sigmoid channel is predicted (logit 0).
PREDICTED_THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class Region:
    """A region target: one channel of a dense output over a mask.

    Args:
        channel: The output channel explained (for a one-unit sigmoid model, 1 is the
            foreground and 0 its negative, as for binary classifiers).
        mask: ``"predicted"``, ``"connected"``, ``"border"``, ``"all"``, or an array of the
            output's spatial shape (non-zero inside).
        reduce: ``"sum"`` (default) or ``"mean"`` of the channel over the mask.
        component: With ``mask="connected"``: which component, 1 the largest.

    Example:
        >>> Region(1)
        Region(channel=1, mask='predicted', reduce='sum')
        >>> Region(2, mask="connected", component=2).name
        'connected'
        >>> Region(1, mask="everywhere")
        Traceback (most recent call last):
        ...
        ValueError: Region mask must be one of predicted, connected, border, all or an array of the output's ...
        spatial shape, got 'everywhere'
    """

    channel: int
    mask: Any = "predicted"
    reduce: str = "sum"
    component: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.channel, bool) or not isinstance(self.channel, (int, np.integer)) or self.channel < 0:
            raise ValueError(f"Region channel must be an integer >= 0, got {self.channel!r}")
        object.__setattr__(self, "channel", int(self.channel))
        if isinstance(self.mask, str):
            if self.mask not in REGION_MASKS:
                raise ValueError(
                    f"Region mask must be one of {', '.join(REGION_MASKS)} or an array of the output's spatial "
                    f"shape, got {self.mask!r}"
                )
        else:
            array = np.asarray(self.mask)
            if (
                array.ndim == 0
                or array.dtype == object
                or not (array.dtype == bool or np.issubdtype(array.dtype, np.number))
            ):
                raise ValueError(
                    f"Region mask must be a mask name or a numeric/bool array, got {type(self.mask).__name__}"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError("Region mask contains NaN or infinite values")
            object.__setattr__(self, "mask", array != 0)
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"Region reduce must be one of {', '.join(REDUCTIONS)}, got {self.reduce!r}")
        if isinstance(self.component, bool) or not isinstance(self.component, (int, np.integer)) or self.component < 1:
            raise ValueError(f"Region component must be an integer >= 1 (1: the largest), got {self.component!r}")
        object.__setattr__(self, "component", int(self.component))

    @property
    def name(self) -> str:
        """The mask's name: ``predicted``, ``connected``, ``border``, ``all`` or ``array``."""
        return self.mask if isinstance(self.mask, str) else "array"

    def __repr__(self) -> str:
        mask = repr(self.mask) if isinstance(self.mask, str) else f"<array {self.mask.shape}>"
        extra = f", component={self.component}" if self.name == "connected" else ""
        return f"Region(channel={self.channel}, mask={mask}, reduce={self.reduce!r}{extra})"

    def resolve(self, output: np.ndarray, activation: str, logits: bool) -> ResolvedRegion:
        """The mask of this region on one image's explained output.

        Args:
            output: ``(*spatial, channels)`` explained output of the unperturbed image.
            activation: The head's squashing function (``"softmax"``, ``"sigmoid"``, ...).
            logits: Whether ``output`` holds logits (else probabilities).

        Returns:
            The :class:`ResolvedRegion` (its mask may be empty: :attr:`ResolvedRegion.voxels` is 0).

        Raises:
            ValueError: a channel out of range, or an array mask of another shape.
        """
        output = np.asarray(output)
        spatial, channels = output.shape[:-1], output.shape[-1]
        if self.channel >= channels:
            raise ValueError(
                f"Region channel {self.channel} is out of range: the explained output has {channels} channel(s) "
                f"(0..{channels - 1})"
            )
        if not isinstance(self.mask, str):
            if self.mask.shape != spatial:
                raise ValueError(
                    f"Region mask has shape {self.mask.shape}; the model's output grid is {spatial} "
                    "(resample the mask to it, nearest neighbour)"
                )
            return ResolvedRegion(self.channel, self.mask, "array", self.reduce)
        if self.mask == "all":
            return ResolvedRegion(self.channel, np.ones(spatial, dtype=bool), "all", self.reduce)
        predicted = predicted_mask(output, self.channel, activation, logits)
        if self.mask == "predicted":
            return ResolvedRegion(self.channel, predicted, "predicted", self.reduce)
        if self.mask == "border":
            return ResolvedRegion(self.channel, inner_border(predicted), "border", self.reduce)
        parts = components(predicted)
        mask = parts[self.component - 1] if self.component <= len(parts) else np.zeros(spatial, dtype=bool)
        return ResolvedRegion(self.channel, mask, "connected", self.reduce, self.component)


@dataclass(frozen=True, eq=False)
class ResolvedRegion:
    """A region's mask on one image, ready to explain.

    Attributes:
        channel: The output channel.
        mask: bool ``(*spatial)`` over the output grid.
        name: What the mask is: ``predicted``, ``connected``, ``border``, ``all``, ``array``
            (the pipeline names a manifest mask ``manifest``).
        reduce: ``"sum"`` or ``"mean"``.
        component: The component number (``connected``), else 0.
    """

    channel: int
    mask: np.ndarray
    name: str
    reduce: str = "sum"
    component: int = 0

    @property
    def words(self) -> str:
        """``the connected region of channel 1 (component 2)``: the region in words."""
        component = f" (component {self.component})" if self.component else ""
        return f"the {self.name} region of channel {self.channel}{component}"

    @property
    def voxels(self) -> int:
        """Output pixels (voxels) inside the region."""
        return int(np.count_nonzero(self.mask))

    def weights(self) -> np.ndarray:
        """float32 ``(*spatial)``: 1 inside (``1/voxels`` for ``mean``), 0 outside.

        Raises:
            ValueError: the region is empty (its score would be a constant 0, its map all zeros).
        """
        voxels = self.voxels
        if voxels == 0:
            raise EmptyRegionError(f"{self.words} is empty: there is nothing to explain")
        scale = 1.0 / voxels if self.reduce == "mean" else 1.0
        return np.where(self.mask, np.float32(scale), np.float32(0.0)).astype(np.float32)

    def score(self, output: np.ndarray) -> float:
        """The region score on one image's ``(*spatial, channels)`` output, in float64."""
        values = np.asarray(output, dtype=np.float64)[..., self.channel]
        return float(np.sum(values * self.weights().astype(np.float64)))


class EmptyRegionError(ValueError):
    """A region target has no pixel: its score is constant and its map would be all zeros."""


def predicted_mask(output: np.ndarray, channel: int, activation: str, logits: bool) -> np.ndarray:
    """Where the model predicts ``channel``: argmax over channels (softmax), else at or over 0.5 (sigmoid).

    Args:
        output: ``(*spatial, channels)`` logits or probabilities.
        channel: The channel.
        activation: ``"softmax"`` or a sigmoid (``"sigmoid"``, ``"hard_sigmoid"``).
        logits: ``output`` holds logits (the sigmoid threshold is then 0, the logit of 0.5).

    Example:
        >>> out = np.array([[[2.0, -1.0], [-3.0, 0.5]]])   # (1, 2, 2): two pixels, two channels
        >>> predicted_mask(out, 1, "softmax", logits=True)
        array([[False,  True]])
        >>> predicted_mask(out, 0, "sigmoid", logits=True)
        array([[ True, False]])
    """
    output = np.asarray(output)
    if activation == "softmax" and output.shape[-1] > 1:
        return np.argmax(output, axis=-1) == channel
    threshold = 0.0 if logits else PREDICTED_THRESHOLD
    return output[..., channel] >= threshold


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The connected components of a bool mask (full connectivity), largest first.

    Ties in size keep the order of their first pixel (C order), so the numbering is stable.

    Example:
        >>> m = np.array([[1, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
        >>> [int(c.sum()) for c in components(m)]
        [2, 1, 1]
    """
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = sorted(range(count), key=lambda k: (-sizes[k], k))  # labels are numbered in C order of first pixel
    return [labels == (k + 1) for k in order]


def inner_border(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with at least one face neighbour outside it (the image edge is not outside).

    Example:
        >>> m = np.zeros((5, 5), dtype=bool); m[1:4, 1:4] = True
        >>> inner_border(m).astype(int)
        array([[0, 0, 0, 0, 0],
               [0, 1, 1, 1, 0],
               [0, 1, 0, 1, 0],
               [0, 1, 1, 1, 0],
               [0, 0, 0, 0, 0]])
    """
    mask = np.asarray(mask, dtype=bool)
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=1)
    return mask & ~eroded
