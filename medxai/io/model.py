"""Loading a trained classifier from disk (.keras, .h5 or a TensorFlow SavedModel folder)."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from medxai.errors import SAVED_MODEL_IS_CODE, ModelLoadError

__all__ = ["CustomObjects", "file_checksum", "load_model", "resolve_custom_objects"]

CustomObjects = str | Sequence[str] | Mapping[str, Any] | None
"""``"package.module:NAME"``, a list of them, or a ``{name: object}`` mapping."""

# Keras 3 (.keras): "Could not locate class 'Scale'"; legacy .h5: "Unknown layer: 'Scale'".
_UNKNOWN_OBJECT = re.compile(
    r"Could not locate (?:class|function) '([^']+)'|Unknown (?:layer|object|[a-z]+ function): '?([\w>.]+)'?"
)


def load_model(
    path: str | os.PathLike, *, custom_objects: CustomObjects = None, trust_saved_model: bool = False
) -> keras.Model:
    """Load a model for inference (never compiled, never from the network).

    Keras's safe mode stays on: a ``Lambda`` layer holding Python bytecode is refused,
    while custom classes named in ``custom_objects`` (or registered with
    ``keras.saving.register_keras_serializable``) load.

    Args:
        path: A ``.keras`` or ``.h5`` file, or a SavedModel directory (wrapped with
            ``keras.layers.TFSMLayer`` on its ``serving_default`` signature, which
            needs no custom objects).
        custom_objects: The custom layers, losses, activations... the model was built
            with: ``"package.module:NAME"`` or a list of them, each imported with
            :mod:`importlib` (see :func:`resolve_custom_objects`), or a ``{name: object}``
            mapping. Importing a module runs its code: name only modules you trust.
        trust_saved_model: load a SavedModel folder. A SavedModel is a TensorFlow graph,
            that is code: its serving function can run any TensorFlow op (write or read
            files, for instance) while medxai calls it. Keras's safe mode does not cover it.

    Raises:
        ModelLoadError: missing file, unknown format, an untrusted SavedModel, a custom object that cannot be
            imported (naming its spec; its ``key`` is ``"custom_objects"``), or a load failure with the
            cause; a model whose custom class Keras cannot find says to name it in ``model.custom_objects``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir() and not trust_saved_model:
        raise ModelLoadError(SAVED_MODEL_IS_CODE.format(path=path))
    objects = resolve_custom_objects(custom_objects)
    try:
        if path.is_dir():
            return _load_saved_model(path)
        if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
            raise ModelLoadError(f"unknown model format {path.suffix!r}: use .keras, .h5 or a SavedModel folder")
        return keras.saving.load_model(path, custom_objects=objects or None, compile=False, safe_mode=True)
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(_load_failure(path, err, objects)) from err


def resolve_custom_objects(custom_objects: CustomObjects) -> dict[str, Any]:
    """The ``{name: object}`` mapping Keras's ``custom_objects`` takes.

    Each ``"package.module:NAME"`` spec imports ``package.module`` (running its code)
    and takes its attribute ``NAME`` (``Outer.Inner`` for a nested one), stored under
    ``NAME``'s last part and, where it differs, the name Keras registered it under.

    Raises:
        ModelLoadError: a spec that is not ``"package.module:NAME"``, a module that cannot
            be imported, or a module without ``NAME``; the message names the spec, the
            error's ``key`` is ``"custom_objects"``.
    """
    if custom_objects is None:
        return {}
    if isinstance(custom_objects, Mapping):
        return dict(custom_objects)
    single = isinstance(custom_objects, str) or not isinstance(custom_objects, Iterable)
    specs = [custom_objects] if single else list(custom_objects)
    objects: dict[str, Any] = {}
    for spec in specs:
        name, obj = _import_object(spec)
        objects[name] = obj
        try:
            registered = keras.saving.get_registered_name(obj)
        except Exception:  # anything Keras cannot name keeps the spec's name
            registered = name
        objects.setdefault(registered, obj)
    return objects


def _import_object(spec: object) -> tuple[str, Any]:
    """``(last part of NAME, the object)`` for one ``"package.module:NAME"`` spec."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ModelLoadError(f"{spec!r} is not 'package.module:NAME'", key="custom_objects")
    module_name, name = (part.strip() for part in spec.split(":"))
    if not module_name or not name:
        raise ModelLoadError(f"{spec!r} is not 'package.module:NAME'", key="custom_objects")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # the user's module may fail in any way
        hint = " (is it installed, or on PYTHONPATH?)" if isinstance(err, ModuleNotFoundError) else ""
        raise ModelLoadError(
            f"cannot import module {module_name!r} for {spec!r}{hint}: {type(err).__name__}: {err}",
            key="custom_objects",
        ) from err
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"module {module_name!r} has no {name!r} (for {spec!r})", key="custom_objects")
        obj = getattr(obj, part)
    return name.rsplit(".", 1)[-1], obj


def _load_failure(path: Path, err: Exception, objects: Mapping[str, Any]) -> str:
    """The message of a failed load; a custom class Keras cannot find gets the config key that fixes it."""
    text = str(err)
    found = _UNKNOWN_OBJECT.search(text)
    if found is None:
        return f"cannot load model {path}: {type(err).__name__}: {text}"
    name = found.group(1) or found.group(2)
    short = name.rsplit(">", 1)[-1]
    # Keras's full config names the module the class was saved from: the likeliest spec.
    module = re.search(rf"'module': '([\w.]+)', 'class_name': '{re.escape(short)}'", text)
    saved_from = module.group(1) if module and not module.group(1).startswith("keras") else "my_package.layers"
    given = f" (custom_objects holds {sorted(objects)})" if objects else ""
    return (
        f"cannot load model {path}: it uses the custom object {name!r}, which Keras cannot find{given}; "
        f"name it in model.custom_objects (load_model's custom_objects), e.g. custom_objects: "
        f"['{saved_from}:{short}'] (Keras: {found.group(0)})"
    )


def _load_saved_model(path: Path) -> keras.Model:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ModelLoadError(f"SavedModel {path} has no 'serving_default' signature")
    specs = list(signature.structured_input_signature[1].values())
    if len(specs) != 1:
        raise ModelLoadError(f"SavedModel {path} must take one input, its signature takes {len(specs)}")
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    inputs = keras.Input(tuple(specs[0].shape[1:]), dtype=specs[0].dtype)
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelLoadError(f"SavedModel {path} must have one output, it has {sorted(outputs)}")
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs, name=path.name)


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a model file, or of every file of a SavedModel folder (sorted by name)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
