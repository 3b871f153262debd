"""Starting TensorFlow without its C++ start-up chatter (for the command line, Dask workers and the Python API)."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up messages (CUDA probing on CPU machines) hidden.

    They are written to file descriptor 2 before Python can filter them; set
    ``MEDXAI_TF_LOGS=1`` to see them. Nothing happens once TensorFlow is imported
    (by medxai or by the caller).
    """
    if "tensorflow" in sys.modules:
        return
    if os.environ.get("MEDXAI_TF_LOGS"):
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.constant(0)  # device set-up also logs
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    import logging

    logging.getLogger("tensorflow").addFilter(_not_retracing)


def _not_retracing(record: object) -> bool:
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning.

    TensorFlow counts traces per Python function, not per compiled function: medxai compiles one
    engine per model (the sanity check's re-initialised copies, each method), each traced once,
    which it reports as excessive retracing of one function. Noise on the command line.
    """
    import logging

    return not (isinstance(record, logging.LogRecord) and "triggered tf.function retracing" in record.getMessage())


#: Libraries that log each failed decoding attempt; medxai reports every failed image itself
#: (an error row naming the file), so on the command line their per-file logs are noise.
NOISY_LOGGERS = ("pydicom", "tifffile")


def quiet_reader_logs() -> None:
    """Silence the per-file error logs of the image libraries (``MEDXAI_READER_LOGS=1`` keeps them)."""
    import logging

    if os.environ.get("MEDXAI_READER_LOGS"):
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
