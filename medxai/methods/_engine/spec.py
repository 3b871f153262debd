"""What to explain of a model's output, and what the user states about it (no TensorFlow here).

The settings are ``model.output``, ``model.output_kind`` and ``model.activation``;
:mod:`medxai.methods._engine.output` reads the model with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from medxai.errors import OutputSelectionError
from medxai.methods._engine import OUTPUT_LOGITS

#: What a model's final output is: the ``model.output_kind`` setting.
OUTPUT_KINDS = ("auto", "logits", "probabilities")
#: How logits become probabilities: the ``model.activation`` setting.
ACTIVATIONS = ("softmax", "sigmoid")


def shape_words(shape: tuple[int | None, ...]) -> str:
    """A per-image output shape as messages print it, unknown sizes as ``?``.

    Example:
        >>> shape_words((None, 64, 2)), shape_words((3,))
        ('(?, 64, 2)', '(3,)')
    """
    return str(tuple("?" if s is None else s for s in shape)).replace("'", "")


@dataclass(frozen=True)
class OutputSpec:
    """What to explain, and what the user states about the model's output.

    Attributes:
        explain: ``"logits"``, ``"probabilities"`` or a layer name (``model.output``).
        kind: What the model's final output is: ``"auto"`` (found from the graph, then
            the values), ``"logits"`` or ``"probabilities"`` (``model.output_kind``).
        activation: ``"softmax"`` or ``"sigmoid"``: how the logits of a model
            without a head become probabilities (``model.activation``); None:
            sigmoid for one output unit, softmax for several.
    """

    explain: str = OUTPUT_LOGITS
    kind: str = "auto"
    activation: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.explain, str) or not self.explain:
            raise OutputSelectionError(
                f"output must be 'logits', 'probabilities' or a layer name, got {self.explain!r}"
            )
        if self.kind not in OUTPUT_KINDS:
            raise OutputSelectionError(f"output_kind must be one of {', '.join(OUTPUT_KINDS)}, got {self.kind!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise OutputSelectionError(
                f"activation must be one of {', '.join(ACTIVATIONS)} or None, got {self.activation!r}"
            )

    @classmethod
    def of(cls, value: str | OutputSpec) -> OutputSpec:
        """An :class:`OutputSpec` from itself or from a plain ``output`` string."""
        return value if isinstance(value, OutputSpec) else cls(value)
