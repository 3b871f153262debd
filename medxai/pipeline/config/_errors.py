"""Problems in our own words: pydantic errors -> ``"dotted.key: what is wrong"`` lines.

The machinery lives in :mod:`medxai._validation`, shared with the library's settings
(which are this config's sections); it is imported from there, not copied.
"""

from __future__ import annotations

from medxai._validation import (
    Problems,
    _collect,
    _did_you_mean,
    _dotted,
    _error,
    _errors,
    _find_model,
    _model_at,
    _problem_lines,
    _schema_fields,
    _show,
    _suggest,
    _unknown_key_message,
)

__all__ = [
    "Problems",
    "_collect",
    "_did_you_mean",
    "_dotted",
    "_error",
    "_errors",
    "_find_model",
    "_model_at",
    "_problem_lines",
    "_schema_fields",
    "_show",
    "_suggest",
    "_unknown_key_message",
]
