"""What a model's output is: the graph's proof, or its values as a second witness.

Where the graph walk (:mod:`~medxai.methods._engine.graph_walk`) proves nothing, the output's
values on probe images (and, in a run, on the study's first batch) decide: rows summing to 1
are softmax probabilities, ``exp(rows)`` summing to 1 log-probabilities, values all in [0, 1]
(sigmoid) probabilities; anything else logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from medxai.errors import OutputSelectionError
from medxai.methods._engine import OUTPUT_LOGITS
from medxai.methods._engine.graph_walk import SIGMOIDS, SQUASHING, Found, walk
from medxai.methods._engine.spec import OutputSpec

PROBE_IMAGES = 8
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Head:
    """What a model's final output is, and where its logits are.

    Attributes:
        kind: ``"logits"`` (the output, or a tensor under it, holds logits reachable as
            :attr:`logits`), ``"probabilities"`` or ``"log_probabilities"`` (values
            whose logits cannot be reached), or ``"unknown"`` (neither can be proved).
        activation: ``"softmax"``, ``"sigmoid"`` or ``"hard_sigmoid"``: the function that makes
            the probabilities of :attr:`logits` (for ``"logits"``), or the kind of
            probabilities (softmax rows or independent sigmoid units).
        where: In words, where the logits are or why they cannot be reached.
        witness: What proved it: ``"graph"``, ``"values"`` (probe images) or ``"user"``
            (``model.output_kind``).
        logits: The symbolic logits tensor in the model's graph (None: not reachable).
        removed: The squashing activation set aside to reach the logits, or None.
        values: For a ``"values"`` witness, what the probe images' outputs looked like.
        blocker: The opaque layer hiding the logits (named in refusals), or None.
    """

    kind: str
    activation: str
    where: str
    witness: str
    logits: Any = None
    removed: str | None = None
    values: str | None = None
    blocker: str | None = None
    units: int = 0

    @property
    def multi_label(self) -> bool:
        """Classes scored independently (sigmoid units), so ``predicted`` means every class over 0.5."""
        return self.activation in SIGMOIDS and self.units > 1

    def check_values(self, values: np.ndarray) -> None:
        """Check the study's outputs against a reading that only probe images witnessed.

        Args:
            values: ``(N, units)`` raw model outputs on the study's first batch.

        Raises:
            OutputSelectionError: the study's outputs look like something else than the
                probe images' (e.g. logits whose values happen to lie in [0, 1]); the
                message names what each looked like and the ``model.output_kind`` fix.
        """
        if self.witness != "values":
            return
        seen = read_values(values)
        if self.values is not None and seen != self.values:
            raise OutputSelectionError(
                f"the model output ({self.where}) looked like {VALUE_WORDS[self.values]} on {PROBE_IMAGES} probe "
                f"images but like {VALUE_WORDS[seen]} on the study's first {len(values)} image(s); medxai will "
                "not guess which they are: set model.output_kind: logits or model.output_kind: probabilities "
                "(and model.activation: softmax or sigmoid) to say what the model outputs"
            )


VALUE_WORDS = {
    "softmax": "softmax probabilities (rows summing to 1)",
    "log_softmax": "log-probabilities (exp of each row summing to 1)",
    "sigmoid": "probabilities (every value in [0, 1])",
    "logits": "logits (values outside [0, 1])",
}


def _probe_inputs(model: keras.Model) -> np.ndarray:
    shape = tuple(32 if s is None else int(s) for s in model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    half = PROBE_IMAGES // 2
    uniform = rng.uniform(0.0, 1.0, size=(half, *shape))
    normal = rng.normal(0.0, 1.0, size=(PROBE_IMAGES - half, *shape))
    return np.concatenate([uniform, normal]).astype(np.float32)


def looks_like_probabilities(values: np.ndarray) -> bool:
    """True when every output is finite and in [0, 1] (softmax rows and sigmoid units both are).

    Example:
        >>> looks_like_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
        True
        >>> looks_like_probabilities(np.array([[-1.3, 2.0]]))
        False
    """
    values = np.asarray(values, dtype=np.float64)
    return bool(values.size and np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0)


def read_values(values: np.ndarray) -> str:
    """What ``(N, units)`` outputs look like: ``"softmax"``, ``"log_softmax"``, ``"sigmoid"`` or ``"logits"``.

    A dense output ``(N, *spatial, units)`` is read per output pixel (each pixel a row).

    Rows summing to 1 (within 1e-3) are softmax probabilities, rows whose
    exponentials sum to 1 log-probabilities, values all in [0, 1] sigmoid
    probabilities; anything else logits.

    Example:
        >>> read_values(np.array([[0.2, 0.8], [0.5, 0.5]]))
        'softmax'
        >>> read_values(np.log(np.array([[0.2, 0.8]])))
        'log_softmax'
        >>> read_values(np.array([[0.9, 0.7]]))
        'sigmoid'
        >>> read_values(np.array([[0.9, 1.7]]))
        'logits'
    """
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(len(values), -1)
    several = values.shape[-1] > 1
    if several and looks_like_probabilities(values) and np.all(np.abs(values.sum(-1) - 1) <= _SUM_TOLERANCE):
        return "softmax"
    if (
        several
        and np.all(np.isfinite(values))
        and values.max() <= 0
        and np.all(np.abs(np.exp(values).sum(-1) - 1) <= _SUM_TOLERANCE)
    ):
        return "log_softmax"
    if looks_like_probabilities(values):
        return "sigmoid"
    return "logits"


def layer_names(model: keras.Model) -> str:
    return ", ".join(layer.name for layer in model.layers)


def _default_activation(spec: OutputSpec, units: int) -> str:
    if spec.activation is not None:
        if spec.activation == "softmax" and units == 1:
            raise OutputSelectionError(
                "model.activation: softmax over one output unit is always 1; a one-unit model is binary: "
                "use model.activation: sigmoid (or leave it unset)"
            )
        return spec.activation
    return "sigmoid" if units == 1 else "softmax"


def read_head(model: keras.Model, spec: OutputSpec | str = OUTPUT_LOGITS) -> Head:
    """What ``model``'s output is and where its logits are (see the module docstring).

    Raises:
        OutputSelectionError: ``model.output_kind`` or ``model.activation`` contradict a
            softmax/sigmoid the graph proves.
    """
    spec = OutputSpec.of(spec)
    units = int(model.outputs[0].shape[-1])
    try:
        found = walk(model.outputs[0])
    except (AttributeError, ValueError, IndexError, TypeError) as err:
        found = Found("opaque", f"a graph medxai cannot follow ({err})", blocker="the model's graph")
    aside = f"; set aside after it: {', '.join(found.passed)}" if found.passed else ""
    if found.status == "squash":
        family = SQUASHING[str(found.removed)]
        if spec.kind == "logits":
            raise OutputSelectionError(
                f"model.output_kind: logits, but the model's output is squashed: {found.where} is the input of "
                f"a {found.removed}; remove model.output_kind (auto finds the logits) or set it to probabilities"
            )
        if spec.activation is not None and (spec.activation in SIGMOIDS) != (family in SIGMOIDS):
            raise OutputSelectionError(
                f"model.activation: {spec.activation}, but the model's head is a {found.removed} ({found.where})"
            )
        return Head("logits", family, f"{found.where} ({found.removed} removed{aside})", "graph", found.tensor,
                    found.removed, units=units)  # fmt: skip
    if found.status in ("linear", "input"):
        where = (
            found.where if found.status == "linear" else f"the model output, computed element-wise from {found.where}"
        )
        if spec.kind == "probabilities":
            raise OutputSelectionError(
                f"model.output_kind: probabilities, but the graph proves the output is not squashed ({where}); "
                "remove model.output_kind, or set it to logits"
            )
        words = f"{where}, no softmax/sigmoid after it{aside}"
        return Head("logits", _default_activation(spec, units), words, "graph", model.outputs[0], units=units)
    # opaque: the user's word, else the values
    hidden = f" (a {found.removed} lies under it)" if found.removed else ""
    where = f"{found.blocker}{hidden}"
    if spec.kind == "logits":
        if found.removed:
            raise OutputSelectionError(
                f"model.output_kind: logits, but {found.blocker} is computed from the output of a {found.removed}; "
                f"use output: <layer name> naming the layer that gives the logits (layers: {layer_names(model)})"
            )
        words = f"the model output as it is ({where}; model.output_kind: logits)"
        activation = _default_activation(spec, units)
        return Head("logits", activation, words, "user", model.outputs[0], units=units, blocker=found.blocker)
    if spec.kind == "probabilities":
        stated = spec.activation or ("softmax" if found.removed in ("softmax", "log_softmax") else None)
        activation = stated or ("softmax" if read_values(_probe(model)) == "softmax" else "sigmoid")
        return Head("probabilities", activation, f"the model output ({where}; model.output_kind: probabilities)",
                    "user", units=units, blocker=found.blocker)  # fmt: skip
    seen = read_values(_probe(model))
    if found.removed and seen == "logits":  # e.g. a Lambda(p * 100) over a softmax: neither logits nor probabilities
        return Head("unknown", _default_activation(spec, units), f"{found.blocker}, computed from the output of a "
                    f"{found.removed}, gives values that are not probabilities", "graph", units=units,
                    blocker=found.blocker)  # fmt: skip
    kind = {"softmax": "probabilities", "sigmoid": "probabilities", "log_softmax": "log_probabilities"}.get(
        seen, "logits"
    )
    if kind == "logits":
        return Head("logits", _default_activation(spec, units), f"the model output as it is ({where}; its values on "
                    f"{PROBE_IMAGES} probe images are not probabilities)", "values", model.outputs[0], values=seen,
                    units=units, blocker=found.blocker)  # fmt: skip
    activation = spec.activation or ("softmax" if seen in ("softmax", "log_softmax") else "sigmoid")
    return Head(kind, activation, f"the model output ({where})", "values", values=seen, units=units,
                blocker=found.blocker, removed=found.removed)  # fmt: skip


def _probe(model: keras.Model) -> np.ndarray:
    return np.asarray(model(_probe_inputs(model), training=False))
