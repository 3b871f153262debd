"""The outline settings of an overlay (:class:`OutlineSpec`), light to import.

:func:`medxai.viz.render.overlay` draws them; the study config's ``output.overlay_outline:``
section is an :class:`OutlineSpec` too (one schema), which is why it lives apart from
``render.py`` (matplotlib, scikit-image): validating a config does not load those.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass

from medxai._validation import (
    SpecMixin,
    is_int,
    library_errors,
    non_negative_int,
    number_where,
    show_value,
    validation_error,
)

__all__ = ["OutlineSpec"]


def _outline_bool(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise validation_error(f"expected true or false, got {show_value(value)}")
    return bool(value)


def _outline_color(value: Any) -> tuple[int, int, int]:
    if (
        isinstance(value, (str, bytes))
        or not hasattr(value, "__len__")
        or len(value) != 3
        or not all(is_int(c) and 0 <= c <= 255 for c in value)
    ):
        raise validation_error(f"expected [r, g, b], three integers from 0 to 255, got {show_value(value)}")
    return tuple(int(c) for c in value)  # type: ignore[return-value]


# One schema for the library and the study config, whose ``output.overlay_outline:`` section
# is an OutlineSpec: each check has one message, after the config's dotted key or, built
# directly (a ValueError), after the field's name (``radius: expected ...``).
@library_errors
@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class OutlineSpec(SpecMixin):
    """How :func:`overlay` outlines the strongest regions of a map.

    Attributes:
        top_percent: Outline the pixels holding the top ``top_percent`` % of map
            values (a value-percentile threshold), ``0 < top_percent <= 100``.
        cleanup: Morphological clean-up of that region (see :func:`strongest_regions`).
        radius: Radius in pixels of the clean-up's disk; 0 = no opening/closing.
        min_size: Smallest connected region kept, in pixels (0 or 1 = keep all).
        color: RGB outline colour, three ints in 0..255.
        only: True: outlines on the grey image, without the colour-mapped map.

    The clean-up defaults (radius 2, min_size 32) were chosen by looking at the demo
    study's 128-pixel overlays: radius 1 / 16 pixels left several specks per map.
    ``top_percent`` depends on how much of the image a finding covers (the demo's
    lesions cover under 1%, and 2 suits them best); 10 is a generic start.

    Also the study config's ``output.overlay_outline:`` section
    (``medxai.pipeline.config.OutputSection.Outline``).

    Raises:
        ValueError: for an out-of-range or wrongly typed field, naming it.
    """

    top_percent: Annotated[
        float, BeforeValidator(number_where("a number greater than 0 and at most 100", lambda v: 0 < v <= 100))
    ] = Field(default=10.0, description="Outline the top X% of map values, 0 < X <= 100.")
    cleanup: Annotated[bool, BeforeValidator(_outline_bool)] = Field(
        default=True, description="Opening, closing, then drop small regions."
    )
    radius: Annotated[int, BeforeValidator(non_negative_int)] = Field(
        default=2, description="Clean-up disk radius in pixels; 0: none."
    )
    min_size: Annotated[int, BeforeValidator(non_negative_int)] = Field(
        default=32, description="Smallest region kept, in pixels."
    )
    color: Annotated[tuple[int, int, int], BeforeValidator(_outline_color)] = Field(
        default=(0, 255, 0), description="RGB, ints 0..255."
    )
    only: Annotated[bool, BeforeValidator(_outline_bool)] = Field(
        default=False, description="Outlines on the plain image, no colour map."
    )

    @classmethod
    def coerce(cls, value: OutlineSpec | Mapping[str, Any] | None) -> OutlineSpec | None:
        """An OutlineSpec from a spec, a mapping of its fields (missing ones: defaults) or None.

        Raises:
            ValueError: unknown keys (with a suggestion) or invalid values.
        """
        if value is None or isinstance(value, OutlineSpec):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"outline must be None, an OutlineSpec or a mapping, got {value!r}")
        known = [f.name for f in fields(cls)]
        unknown = [k for k in value if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                guess = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hints.append(f"{key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
            raise ValueError(f"unknown outline option {', '.join(hints)}; known: {', '.join(known)}")
        return cls(**value)
