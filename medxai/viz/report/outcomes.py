"""Labels against predictions: class sets of index cells, class names, and whether an image was mispredicted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medxai.viz.report.loading import ImageEntry, Run, to_class

CORRECT, MISPREDICTED, UNKNOWN = "correct", "mispredicted", ""


def class_set(cell: str) -> frozenset[int] | None:
    """The classes of a ``label`` or ``predicted`` cell (``"3"``, ``"2;5"``, ``"1.0"``).

    Returns:
        The set (empty for an empty cell), or None when a part is not a class index
        (a text label such as ``"pneumonia"``): such a cell cannot be compared.
    """
    parts = [part.strip() for part in str(cell).split(";") if part.strip()]
    classes = [to_class(part) for part in parts]
    if any(c is None for c in classes):
        return None
    return frozenset(c for c in classes if c is not None)


def _explains_predictions(run: Run) -> bool:
    """Whether the run's targets were the model's positive classes (``predicted``, or a probability threshold)."""
    targets = (run.info.get("config") or {}).get("targets")
    return targets == "predicted" or (isinstance(targets, Mapping) and "threshold" in targets)


def outcome(image: ImageEntry, run: Run) -> str:
    """``"correct"``, ``"mispredicted"`` or ``""`` (unknown: no label, or nothing to compare it with).

    The label set is compared with the index's ``predicted`` set; an index without
    one (older runs) falls back to the explained classes when the run explained
    the predicted classes.
    """
    labels = class_set(image.label)
    if not labels:
        return UNKNOWN
    predicted = class_set(image.predicted)
    if not image.predicted:
        if not _explains_predictions(run):
            return UNKNOWN
        predicted = frozenset(c for c in image.classes if c is not None) or None
    if predicted is None:
        return UNKNOWN
    return CORRECT if predicted == labels else MISPREDICTED


def class_names(run: Run) -> dict[int, str]:
    """Class index to name: the index's ``class_name`` cells, else ``run.json``'s ``model.class_names``."""
    names: dict[int, str] = {}
    listed = (run.info.get("model") or {}).get("class_names")
    if isinstance(listed, list):
        names.update({k: str(name) for k, name in enumerate(listed) if name not in (None, "")})
    for image in run.images:
        for row in image.rows:
            if row.class_index is not None and row.class_name:
                names[row.class_index] = row.class_name
    return names


def class_text(class_index: Any, names: Mapping[int, str]) -> str:
    """A class as shown: ``1 (Nodule)`` when it has a name, ``1`` otherwise, ``—`` for none."""
    if class_index is None or class_index == "":
        return "—"
    name = names.get(class_index) if isinstance(class_index, int) else None
    return f"{class_index} ({name})" if name else str(class_index)


def classes_text(classes: Iterable[int], names: Mapping[int, str]) -> str:
    """Several classes as shown, comma-separated, in index order."""
    return ", ".join(class_text(c, names) for c in sorted(classes))
