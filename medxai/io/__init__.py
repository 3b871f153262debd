"""The io layer: manifests, image readers (DICOM, PNG/JPEG/TIFF, NPY, NIfTI), atomic writers.

Light on purpose: nothing here imports TensorFlow.
"""

from medxai.io.image import ImageReadError, LoadedImage
from medxai.io.manifest import ManifestError, ManifestRow, read_manifest, safe_id
from medxai.io.readers import read_image, supported_suffixes
from medxai.io.writers import atomic_write_bytes, write_npy, write_png, write_text

__all__ = [
    "ImageReadError",
    "LoadedImage",
    "ManifestError",
    "ManifestRow",
    "atomic_write_bytes",
    "read_image",
    "read_manifest",
    "safe_id",
    "supported_suffixes",
    "write_npy",
    "write_png",
    "write_text",
]
