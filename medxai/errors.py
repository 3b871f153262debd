"""Every error type a user of medxai catches, in one place.

This module imports nothing from medxai, so every layer may raise these. Each
is also importable from the module that raises it (``medxai.io.ImageReadError``,
``medxai.pipeline.config.ConfigError``, ...) and from ``medxai`` itself.

Per-image problems (:class:`ImageReadError`, :class:`PreprocessError`) become an
error row in the index and the run goes on; the others stop a run before it starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class ConfigError(ValueError):
    """An invalid config; ``problems`` lists every problem, each led by its dotted key."""

    def __init__(self, problems: str | Sequence[str], source: str | os.PathLike[str] | None = None):
        """Create the error.

        Args:
            problems: One problem or a list of problems ("key: what is wrong").
            source: The config file the problems are in, if any.
        """
        problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(problems, source)
        self.problems: list[str] = problems
        self.source: Path | None = Path(source) if source is not None else None

    def __str__(self) -> str:
        head = f"invalid config {self.source}:" if self.source is not None else "invalid config:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class StudyError(ValueError):
    """The study cannot start (model, preprocessing or methods); the message starts with the config key."""


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (missing column, duplicate ids, bad label...)."""


class ImageReadError(Exception):
    """A per-image problem: missing, unreadable, unsupported or without pixels.

    The message is meant for the user and names the file. ``path`` holds the
    file's path when the reader knew it.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class CorruptPixelDataError(ImageReadError):
    """An image whose pixel data is malformed: a decoder would have to guess (``data.on_corrupt: error``).

    An RLE segment that decodes to more or fewer bytes than the frame needs, a truncated or
    overlong JPEG/JPEG 2000 codestream, a decoded frame of the wrong size, data past the declared
    frames. The message names the file and, where known, the frame, the segment and the sizes;
    ``problems`` lists each finding without the file.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, problems: Sequence[str] = ()) -> None:
        """Create the error.

        Args:
            message: The whole message, naming the file.
            path: The file.
            problems: What is wrong, one finding each, without the file.
        """
        super().__init__(message, path)
        self.problems: list[str] = list(problems)


class PreprocessError(ValueError):
    """A per-image problem: NaN/inf values, channels or spatial dims the model cannot take."""


class SettingError(ValueError):
    """A value that does not fit the setting it was given for; the setting is data, never read back from the text.

    ``str()`` is the key, ``sep`` and the message: ``"methods[1]: ig is configured twice ..."``. Code that
    turns it into a config's message reads ``key``; ``sep`` is wording only (``"model.class_names has 3
    names ..."`` joins with a space).

    Attributes:
        key: The setting, as a dotted config key (``methods[1]``, ``targets``, ``model.class_names``).
        message: What is wrong, without the key.
        sep: What joins the key and the message.
    """

    def __init__(self, key: str, message: str, sep: str = ": ") -> None:
        """Create the error.

        Args:
            key: The setting the value was given for.
            message: What is wrong, without the key.
            sep: What joins the key and the message in ``str()``.
        """
        super().__init__(key, message, sep)
        self.key = key
        self.message = message
        self.sep = sep

    def __str__(self) -> str:
        return f"{self.key}{self.sep}{self.message}"


class ModelLoadError(ValueError):
    """The model file cannot be loaded as a one-input Keras classifier.

    Attributes:
        key: The ``load_model`` argument at fault when it is not the file: ``"custom_objects"``; None
            when it is the file (or folder) itself. ``str()`` puts it in front: ``"custom_objects: ..."``.
        message: What is wrong, without the key.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        """Create the error.

        Args:
            message: What is wrong, without the key.
            key: The argument at fault (``"custom_objects"``), or None for the model file itself.
        """
        super().__init__(*((message,) if key is None else (message, key)))
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return self.message if self.key is None else f"{self.key}: {self.message}"


class OutputSelectionError(ValueError):
    """The requested output cannot be built from the model, or would not be what was asked."""


class EvaluationError(ValueError):
    """The folder is not a finished medxai run, or its study cannot be reloaded."""


class SanityCheckError(ValueError):
    """The model cannot be copied or randomised for the check."""


class ReportError(ValueError):
    """The folder is not a medxai run (no ``index.csv`` / ``run.json``), or they cannot be read."""


#: Why a SavedModel folder is refused unless trusted (``{path}`` is filled in).
SAVED_MODEL_IS_CODE = (
    "{path} is a TensorFlow SavedModel, and a SavedModel is code: its graph runs any TensorFlow op "
    "(it can write files) when medxai calls it, and Keras's safe mode does not cover it. Load only "
    "models you trust: set model.trust_saved_model: true (or save the model as .keras, which safe mode checks)"
)
