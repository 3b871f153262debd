"""The run's progress bar: :func:`medxai._progress.progress_bar` (kept here for ``medxai.progress`` users)."""

from __future__ import annotations

from medxai._progress import progress_bar

__all__ = ["progress_bar"]
