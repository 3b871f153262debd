"""The io layer: manifests, image readers (DICOM files and series, PNG/JPEG/TIFF, NPY, NIfTI), atomic writers.

An input format is one module plus one :func:`~medxai.io.readers.register_reader` call
(:data:`medxai.io.readers.READERS` is the table). Light on purpose: nothing here imports
TensorFlow. Image geometry (affines) is :mod:`medxai.io.geometry`; DICOM Parametric Map / Secondary Capture export is
:mod:`medxai.io.dicom_export` (imported on use: it loads highdicom).
"""

from medxai.io.image import CorruptPixelDataError, ImageReadError, LoadedImage
from medxai.io.manifest import ManifestError, ManifestRow, read_manifest, safe_id
from medxai.io.nifti import write_nifti
from medxai.io.readers import read_image, register_reader, supported_suffixes, unregister_reader
from medxai.io.writers import atomic_write_bytes, write_npy, write_png, write_text

__all__ = [
    "CorruptPixelDataError",
    "ImageReadError",
    "LoadedImage",
    "ManifestError",
    "ManifestRow",
    "atomic_write_bytes",
    "read_image",
    "read_manifest",
    "register_reader",
    "safe_id",
    "supported_suffixes",
    "unregister_reader",
    "write_nifti",
    "write_npy",
    "write_png",
    "write_text",
]
