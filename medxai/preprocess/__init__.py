"""Preprocessing: a :class:`~medxai.io.LoadedImage` -> exactly the tensor the model was trained on, and back.

``Preprocessor.__call__`` runs these steps, each also a public function (in
the manner of MONAI's named transforms):

1. finiteness check (NaN/inf -> :class:`PreprocessError`);
2. :func:`apply_window`, the DICOM VOI window (PS3.3 C.11.2);
3. inversion for MONOCHROME1 (:func:`invert_intensity`);
4. :func:`resize_spatial` to the model's spatial size;
5. :func:`match_channels` to the model's channel count;
6. :func:`scale_intensity` (``scale: stored_range`` maps the file's stored range,
   ``LoadedImage.meta["stored_range"]``, to [0, 1]);
7. with a ``preset``, the values are taken to [0, 255] and :func:`apply_preset` gives
   what ``keras.applications.<family>.preprocess_input`` gives.

:meth:`Preprocessor.to_source` takes a map at model geometry back to the
source image's geometry; :meth:`Preprocessor.display` gives the image as a
person would look at it, for overlays (no scale, no preset).
"""

from medxai.errors import PreprocessError
from medxai.preprocess.preprocessor import Geometry, Preprocessor
from medxai.preprocess.spec import PRESETS, PreprocessSpec, ScaleStats, WindowSpec
from medxai.preprocess.transforms import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LUMA_BT601,
    MAX_ASPECT_CHANGE,
    apply_preset,
    apply_window,
    check_finite,
    invert_intensity,
    match_channels,
    resize_mask,
    resize_spatial,
    scale_intensity,
)

__all__ = [
    "CAFFE_MEAN_BGR",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LUMA_BT601",
    "MAX_ASPECT_CHANGE",
    "PRESETS",
    "Geometry",
    "PreprocessError",
    "PreprocessSpec",
    "Preprocessor",
    "ScaleStats",
    "WindowSpec",
    "apply_preset",
    "apply_window",
    "check_finite",
    "invert_intensity",
    "match_channels",
    "resize_mask",
    "resize_spatial",
    "scale_intensity",
]
