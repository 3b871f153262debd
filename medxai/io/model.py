"""Loading a trained classifier from disk (.keras, .h5 or a TensorFlow SavedModel folder)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras

from medxai.errors import ModelLoadError


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a model for inference (never compiled, never from the network).

    Args:
        path: A ``.keras`` or ``.h5`` file, or a SavedModel directory (wrapped with
            ``keras.layers.TFSMLayer`` on its ``serving_default`` signature).

    Raises:
        ModelLoadError: missing file, unknown format or a load failure, with the cause.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    try:
        if path.is_dir():
            return _load_saved_model(path)
        if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
            raise ModelLoadError(f"unknown model format {path.suffix!r}: use .keras, .h5 or a SavedModel folder")
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(f"cannot load model {path}: {type(err).__name__}: {err}") from err


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
