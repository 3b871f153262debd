"""Synthetic CT-like and radiograph-like images with lesion masks.

The demo study under ``data_samples/study`` and the training data of the
example models both come from here, so everything is reproducible from a
seed and needs no patient data. Two kinds of image:

* **CT-like axial slices** in Hounsfield units (HU): air outside, an
  elliptical body with a subcutaneous fat rim, soft tissue, two lungs with
  small vessels, a vertebra, correlated noise. A positive slice carries one
  round, slightly lobulated lesion: a solid nodule in a lung (-60..+60 HU,
  easily seen in the soft-tissue window against aerated lung) or a
  hyperdense lesion in soft tissue (+60..+120 HU above its surroundings).
* **Radiograph-like chest images** as intensities in [0, 1], 1 = bright
  (dense): lungs, mediastinum, heart, ribs, clavicles, diaphragm. A
  positive image carries one bright opacity inside a lung.

Masks are boolean arrays marking the lesion; negatives have an all-False
mask. :func:`write_study` writes a small evaluation study (DICOM and PNG,
with 0/255 PNG masks and a ``manifest.csv``); :func:`make_dataset` draws any
number of in-memory images for training, from a random stream that never
overlaps the study's, so a training set built with ``seed=0`` does not
contain the study built with ``seed=0``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from scipy import ndimage as ndi

__all__ = [
    "CT_WINDOW",
    "CT_RESCALE_INTERCEPT",
    "ct_slice",
    "radiograph",
    "make_dataset",
    "write_ct_dicom",
    "write_xray_dicom",
    "write_mask_png",
    "StudyItem",
    "study_items",
    "write_study",
]

#: (center, width) in HU written to the CT files: the soft-tissue window,
#: in which both the lung nodules and the soft-tissue lesions are visible.
CT_WINDOW: tuple[float, float] = (40.0, 400.0)
#: Stored value = HU - CT_RESCALE_INTERCEPT (RescaleSlope is 1).
CT_RESCALE_INTERCEPT = -1024
#: Largest stored value of the 12-bit radiograph DICOM files.
XRAY_MAX_STORED = 4095

_HU_MIN, _HU_MAX = -1024.0, 3071.0
# Keep the study's and make_dataset's random streams apart (see module doc).
_STREAM_STUDY, _STREAM_TRAIN = 1, 2
_KIND_CODE = {"ct": 1, "xray": 2}
# Fixed, so that files are byte-identical from run to run.
_STUDY_DATE, _STUDY_TIME = "20240101", "090000"


# --------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _lesion_shape(
    rng: np.random.Generator, yy, xx, cy: float, cx: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """A round, slightly lobulated lesion.

    Returns the boolean mask (the lesion's outline) and a weight in [0, 1]
    that ramps over about one pixel at the outline (partial volume), so the
    mask is the half-height contour of the weight.
    """
    lobes = int(rng.integers(3, 7))
    amp = rng.uniform(0.0, 0.15)
    phase = rng.uniform(0.0, 2 * np.pi)
    theta = np.arctan2(yy - cy, xx - cx)
    r_edge = radius * (1.0 + amp * np.sin(lobes * theta + phase))
    dist = np.hypot(yy - cy, xx - cx)
    weight = np.clip(r_edge + 0.5 - dist, 0.0, 1.0)
    return dist <= r_edge, weight


def _place(rng: np.random.Generator, region: np.ndarray, radius: float) -> tuple[float, float, float]:
    """A random centre whose lesion of ``radius`` (plus lobulation) fits in ``region``.

    Returns ``(cy, cx, radius)``; the radius shrinks when the region is too
    small for it (it never is at the default size).
    """
    depth = ndi.distance_transform_edt(region)
    radius = min(radius, (float(depth.max()) - 1.5) / 1.15)
    if radius < 2.0:
        raise RuntimeError("no room for a lesion; use a larger image size")
    candidates = np.flatnonzero(depth > radius * 1.15 + 1.0)
    cy, cx = np.unravel_index(candidates[rng.integers(candidates.size)], region.shape)
    return float(cy), float(cx), radius


def _correlated_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise with spatial correlation of ``sigma`` pixels."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-12)


# --------------------------------------------------------------------------
# image generators
# --------------------------------------------------------------------------
def ct_slice(rng: np.random.Generator, *, lesion: bool, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like axial chest slice in Hounsfield units.

    Args:
        rng: The random generator (the only source of randomness).
        lesion: Whether to draw a lesion (label 1).
        size: Height and width in pixels; the anatomy scales with it.

    Returns:
        ``(hu, mask)``: ``hu`` float32 ``(size, size)`` holding whole HU values
        in [-1024, 3071] (so the int16 DICOM round trip is exact), ``mask``
        bool ``(size, size)``, all False when ``lesion`` is False.

    Example:
        >>> hu, mask = ct_slice(np.random.default_rng(0), lesion=True)
        >>> hu.shape, bool(mask.any())
        ((128, 128), True)
    """
    _check_size(size)
    s = size / 128.0
    yy, xx = _grid(size)
    c = size / 2.0

    # Body outline and the soft tissue inside a fat rim (image top = anterior).
    by, bx = c + rng.uniform(-3, 3) * s, c + rng.uniform(-3, 3) * s
    ry, rx = rng.uniform(0.30, 0.35) * size, rng.uniform(0.41, 0.45) * size
    rim = rng.uniform(3.0, 6.0) * s
    body = _ellipse(yy, xx, by, bx, ry, rx)
    inner = _ellipse(yy, xx, by, bx, ry - rim, rx - rim)
    hu = np.full((size, size), -1000.0)
    hu[body] = rng.uniform(-110, -90)
    hu[inner] = rng.uniform(35, 50)

    # Heart: slightly less dense than muscle, anterior and to the image right.
    heart = _ellipse(yy, xx, by - 0.05 * size, bx + 0.06 * size, 0.11 * size, 0.13 * size)
    hu[heart & inner] = rng.uniform(25, 35)

    # Lungs, each an ellipse well inside the fat rim.
    lungs = np.zeros((size, size), dtype=bool)
    for side in (-1.0, 1.0):
        ly = by + rng.uniform(-0.03, 0.01) * size
        lx = bx + side * rng.uniform(0.19, 0.22) * size
        lry = rng.uniform(0.20, 0.23) * size
        lrx = rng.uniform(0.13, 0.15) * size
        lungs |= _ellipse(yy, xx, ly, lx, lry, lrx)
    lungs &= ndi.binary_erosion(inner, iterations=max(2, int(round(3 * s))))
    hu[lungs] = rng.uniform(-870, -830)
    # Vessels: small dense dots, at most ~1.5 px so they never look like a lesion.
    lung_px = np.flatnonzero(lungs)
    for idx in rng.choice(lung_px, size=int(rng.integers(12, 25)), replace=False):
        vy, vx = np.unravel_index(idx, lungs.shape)
        dot = np.hypot(yy - vy, xx - vx) <= rng.uniform(0.6, 1.5) * max(s, 1.0)
        hu[dot & lungs] = rng.uniform(-450, -100)

    # Vertebra: cortical ring, marrow, spinous process (posterior = bottom).
    vy, vx = by + ry - rim - 0.11 * size, bx + rng.uniform(-1, 1) * s
    vr = rng.uniform(0.055, 0.065) * size
    vdist = np.hypot(yy - vy, xx - vx)
    hu[vdist <= vr] = rng.uniform(900, 1100)
    hu[vdist <= vr - 2.0 * s] = rng.uniform(250, 350)
    process = (np.abs(xx - vx) <= 1.5 * s) & (yy > vy) & (yy <= vy + vr + 5 * s)
    hu[process & inner] = rng.uniform(600, 800)
    bone = (vdist <= vr) | (process & inner)
    lungs &= ~bone

    mask = np.zeros((size, size), dtype=bool)
    if lesion:
        mask, hu = _add_ct_lesion(rng, yy, xx, hu, lungs=lungs, soft=inner & ~lungs & ~bone, s=s)

    hu = ndi.gaussian_filter(hu, 0.6)  # partial volume at every edge
    # Texture and noise; air gets the same noise (it is clipped at -1024 anyway).
    hu += 8.0 * _correlated_noise(rng, hu.shape, 1.2) + rng.normal(0.0, 6.0, hu.shape)
    hu = np.clip(np.rint(hu), _HU_MIN, _HU_MAX).astype(np.float32)
    return hu, mask


def _add_ct_lesion(rng, yy, xx, hu, *, lungs, soft, s):
    radius = rng.uniform(4.0, 12.0) * s
    region_is_lung = bool(rng.random() < 0.5)
    cy, cx, radius = _place(rng, lungs if region_is_lung else soft, radius)
    mask, weight = _lesion_shape(rng, yy, xx, cy, cx, radius)
    if region_is_lung:
        # A solid nodule replaces aerated lung with (near) soft-tissue density.
        target = rng.uniform(-60.0, 60.0)
        hu = hu * (1.0 - weight) + target * weight
    else:
        hu = hu + rng.uniform(60.0, 120.0) * weight
    return mask, hu


def radiograph(rng: np.random.Generator, *, lesion: bool, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One radiograph-like (PA chest X-ray) image.

    Args:
        rng: The random generator (the only source of randomness).
        lesion: Whether to draw an opacity (label 1).
        size: Height and width in pixels; the anatomy scales with it.

    Returns:
        ``(img, mask)``: ``img`` float32 ``(size, size)`` in [0, 1] with
        1 = bright (dense, as displayed), ``mask`` bool ``(size, size)``, all
        False when ``lesion`` is False.

    Example:
        >>> img, mask = radiograph(np.random.default_rng(0), lesion=False)
        >>> bool(img.min() >= 0.0 and img.max() <= 1.0), bool(mask.any())
        (True, False)
    """
    _check_size(size)
    s = size / 128.0
    yy, xx = _grid(size)
    v, u = yy / size, xx / size  # normalised coordinates
    du, dv = rng.uniform(-0.03, 0.03, size=2)
    k = rng.uniform(0.95, 1.05)  # patient size

    img = np.full((size, size), 0.03)
    body = _ellipse(v, u, 0.62 + dv, 0.5 + du, 0.62 * k, 0.47 * k)
    img[body] = 0.45 + 0.1 * v[body]  # thicker towards the abdomen

    lungs = np.zeros((size, size), dtype=bool)
    for side in (-1.0, 1.0):
        lungs |= _ellipse(
            v,
            u,
            0.50 + dv + rng.uniform(-0.01, 0.01),
            0.5 + du + side * 0.19 * k,
            0.30 * k,
            rng.uniform(0.12, 0.14) * k,
        )
    lungs &= body & (v < 0.82 + dv)
    img[lungs] = 0.2 + 0.08 * v[lungs]

    mediastinum = body & (np.abs(u - 0.5 - du) < 0.065 * k) & (v > 0.15)
    heart = _ellipse(v, u, 0.68 + dv, 0.55 + du, 0.13 * k, rng.uniform(0.13, 0.16) * k)
    img[mediastinum] = 0.68
    img[heart & body] = 0.72

    # Ribs (arcs falling laterally) over the lungs and a margin around them.
    thorax = ndi.binary_dilation(lungs, iterations=max(1, int(round(5 * s))))
    for y0 in np.arange(0.22, 0.78, 0.07) + dv:
        curve = y0 + 0.7 * (u - 0.5 - du) ** 2
        rib = (np.abs(v - curve) < 0.011 * k) & thorax & ~mediastinum
        img[rib] += 0.07
    for side in (-1.0, 1.0):
        t = (u - 0.5 - du) * side
        clav = (np.abs(v - (0.2 + dv - 0.2 * t)) < 0.012) & (t > 0.05) & (t < 0.33)
        img[clav & body] += 0.12

    mask = np.zeros((size, size), dtype=bool)
    if lesion:
        radius = rng.uniform(4.0, 11.0) * s
        cy, cx, radius = _place(rng, lungs & ~heart & ~mediastinum, radius)
        mask, weight = _lesion_shape(rng, yy, xx, cy, cx, radius)
        # An opacity is densest at its centre: a soft dome over the mask.
        dome = np.sqrt(np.clip(1.0 - (np.hypot(yy - cy, xx - cx) / (radius + 1.0)) ** 2, 0.0, 1.0))
        img += rng.uniform(0.15, 0.35) * weight * (0.5 + 0.5 * dome)

    img = ndi.gaussian_filter(img, 1.0 * s)
    img = img * rng.uniform(0.9, 1.1) + rng.uniform(-0.03, 0.03)  # exposure
    img += 0.02 * _correlated_noise(rng, img.shape, 2.0 * s) + rng.normal(0.0, 0.012, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"size must be an integer >= 64, got {size!r}")


def _balanced_labels(rng: np.random.Generator, n: int, positive_fraction: float = 0.5) -> np.ndarray:
    n_pos = int(round(n * positive_fraction))
    labels = np.zeros(n, dtype=np.int64)
    labels[:n_pos] = 1
    return rng.permutation(labels)


def _rngs(seed: int, stream: int, kind: str, n: int) -> list[np.random.Generator]:
    # One independent child stream per image: image i does not depend on n.
    root = np.random.SeedSequence(seed, spawn_key=(stream, _KIND_CODE[kind]))
    return [np.random.default_rng(child) for child in root.spawn(n + 1)]


def make_dataset(
    n: int,
    *,
    seed: int,
    kind: Literal["ct", "xray"] = "ct",
    size: int = 128,
    positive_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Any number of images for training, in memory.

    The random stream differs from :func:`write_study`'s, so
    ``make_dataset(n, seed=0)`` never reproduces the demo study.

    Args:
        n: Number of images.
        seed: Seed; the same seed gives the same arrays.
        kind: ``"ct"`` (HU, see :func:`ct_slice`) or ``"xray"`` ([0, 1], see
            :func:`radiograph`).
        size: Height and width.
        positive_fraction: Share of label-1 images (rounded to a count).

    Returns:
        ``(images, masks, labels)``: float32 ``(n, size, size)``, bool
        ``(n, size, size)``, int64 ``(n,)``. Images are raw (HU for CT); window
        and scale them as the model expects.

    Example:
        >>> x, m, y = make_dataset(4, seed=1, kind="xray")
        >>> x.shape, int(y.sum())
        ((4, 128, 128), 2)
    """
    if kind not in _KIND_CODE:
        raise ValueError(f"kind must be 'ct' or 'xray', got {kind!r}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction!r}")
    _check_size(size)
    rngs = _rngs(seed, _STREAM_TRAIN, kind, n)
    labels = _balanced_labels(rngs[-1], n, positive_fraction)
    draw = ct_slice if kind == "ct" else radiograph
    images = np.empty((n, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        images[i], masks[i] = draw(rngs[i], lesion=bool(labels[i]), size=size)
    return images, masks, labels


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------
def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["medxai-synthetic", *map(str, parts)])


def _base_dataset(sop_class: str, sop_instance: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _STUDY_TIME
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "medxai synthetic"
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "Synthetic image generated by medxai.data.synthetic; not patient data."
    ds.SamplesPerPixel = 1
    return ds


def _save(ds: Dataset, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_dicom(
    path: str | Path,
    hu: np.ndarray,
    *,
    uid_seed: object,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
    patient_id: str = "SYNTH-0000",
    pixel_spacing: tuple[float, float] = (2.734375, 2.734375),
    window: tuple[float, float] = CT_WINDOW,
) -> Path:
    """Write a HU slice as a CT DICOM file (signed int16, ExplicitVRLittleEndian).

    Stored value = HU - (-1024), RescaleSlope 1, RescaleIntercept -1024,
    PixelRepresentation 1, MONOCHROME2, the VOI window from ``window``.

    Args:
        path: Output file; folders are created.
        hu: 2D array of HU values; rounded to whole HU and clipped to
            [-1024, 3071].
        uid_seed: Any value(s) turned into deterministic UIDs with
            ``pydicom.uid.generate_uid(entropy_srcs=...)``; the same seed gives
            the same SOP instance UID (and study/series UIDs unless given).
        study_uid, series_uid: Shared UIDs for a study/series; derived from
            ``uid_seed`` when None.
        instance_number: InstanceNumber (also sets the slice position).
        patient_id: PatientID.
        pixel_spacing: (row, column) spacing in mm.
        window: (WindowCenter, WindowWidth) in HU.

    Returns:
        The path written.
    """
    hu = np.asarray(hu)
    if hu.ndim != 2:
        raise ValueError(f"hu must be 2D, got shape {hu.shape}")
    stored = (np.clip(np.rint(hu), _HU_MIN, _HU_MAX) - CT_RESCALE_INTERCEPT).astype("<i2")
    sop_uid = _uid("ct", "instance", uid_seed)
    ds = _base_dataset(CTImageStorage, sop_uid)
    ds.StudyInstanceUID = study_uid or _uid("ct", "study", uid_seed)
    ds.SeriesInstanceUID = series_uid or _uid("ct", "series", uid_seed)
    ds.FrameOfReferenceUID = _uid("ct", "frame", ds.SeriesInstanceUID)
    ds.PatientID = patient_id
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(instance_number)
    ds.Modality = "CT"
    ds.SeriesDescription = "medxai synthetic chest CT"
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.KVP = 120
    ds.SliceThickness = 5.0
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rows, cols = stored.shape
    ds.ImagePositionPatient = [-cols * pixel_spacing[1] / 2, -rows * pixel_spacing[0] / 2, -5.0 * int(instance_number)]
    ds.SliceLocation = -5.0 * int(instance_number)
    ds.PixelSpacing = list(pixel_spacing)
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = CT_RESCALE_INTERCEPT
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = window
    ds.WindowCenterWidthExplanation = "SOFT TISSUE"
    ds.PixelData = stored.tobytes()
    return _save(ds, path)


def write_xray_dicom(
    path: str | Path,
    img01: np.ndarray,
    *,
    monochrome1: bool = True,
    uid_seed: object = 0,
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
    patient_id: str = "SYNTH-0000",
    pixel_spacing: tuple[float, float] = (2.8, 2.8),
) -> Path:
    """Write a [0, 1] radiograph (1 = bright) as a 12-bit CR DICOM file.

    With ``monochrome1`` the stored value is ``round((1 - img01) * 4095)``
    (MONOCHROME1: the lowest value displays white, so dense = low value);
    otherwise ``round(img01 * 4095)`` with MONOCHROME2. No rescale tags
    (the modality LUT is the identity); the window spans the full range.

    Args:
        path: Output file; folders are created.
        img01: 2D array in [0, 1] (values outside are clipped).
        monochrome1: Write MONOCHROME1 (True) or MONOCHROME2.
        uid_seed: Value(s) turned into deterministic UIDs.
        study_uid, series_uid: Shared UIDs; derived from ``uid_seed`` when None.
        instance_number: InstanceNumber.
        patient_id: PatientID.
        pixel_spacing: (row, column) spacing in mm (also ImagerPixelSpacing).

    Returns:
        The path written.
    """
    img01 = np.asarray(img01, dtype=np.float64)
    if img01.ndim != 2:
        raise ValueError(f"img01 must be 2D, got shape {img01.shape}")
    level = np.clip(img01, 0.0, 1.0)
    if monochrome1:
        level = 1.0 - level
    stored = np.rint(level * XRAY_MAX_STORED).astype("<u2")
    sop_uid = _uid("xray", "instance", uid_seed)
    ds = _base_dataset(ComputedRadiographyImageStorage, sop_uid)
    ds.StudyInstanceUID = study_uid or _uid("xray", "study", uid_seed)
    ds.SeriesInstanceUID = series_uid or _uid("xray", "series", uid_seed)
    ds.PatientID = patient_id
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = int(instance_number)
    ds.Modality = "CR"
    ds.SeriesDescription = "medxai synthetic chest radiograph"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ["L", "F"]
    ds.PixelSpacing = list(pixel_spacing)
    ds.ImagerPixelSpacing = list(pixel_spacing)
    ds.Rows, ds.Columns = stored.shape
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = (XRAY_MAX_STORED + 1) / 2
    ds.WindowWidth = XRAY_MAX_STORED + 1
    ds.PixelData = stored.tobytes()
    return _save(ds, path)


def write_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write a boolean mask as an 8-bit PNG, 255 inside and 0 outside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)).save(path)
    return path


def _write_png01(path: Path, img01: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(np.clip(img01, 0.0, 1.0) * 255).astype(np.uint8)).save(path)
    return path


_README = """\
medxai synthetic demo study (medxai.data.synthetic.write_study, seed {seed})
Not patient data. Binary task: label 1 = lesion present.

manifest.csv  image_id,path,label,mask  (paths relative to this folder)
ct_manifest.csv  the CT rows only (for the NIfTI/DICOM export demo)
ct/           {n_ct} CT-like axial slices, DICOM CT, MONOCHROME2, signed int16,
              RescaleSlope 1, RescaleIntercept -1024 (stored = HU + 1024),
              window center {wc:g} / width {ww:g} HU (soft tissue).
xray/         {n_xray} radiograph-like chest images: {n_xray_dcm} DICOM CR MONOCHROME1
              (12-bit, dense = low stored value) and the rest 8-bit PNG (bright = dense).
masks/        8-bit PNG, 255 = lesion, 0 = background, one per image; negatives
              have an all-zero mask file (the mask column is never empty).
"""


class StudyItem(NamedTuple):
    """One image of the study, as :func:`study_items` draws it."""

    image_id: str
    kind: Literal["ct", "xray"]
    image: np.ndarray  # HU for "ct", [0, 1] for "xray"
    mask: np.ndarray
    label: int
    path: str  # file path relative to the study folder
    mask_path: str


def study_items(*, seed: int = 0, n_ct: int = 24, n_xray: int = 12) -> list[StudyItem]:
    """The study's images in memory, exactly as :func:`write_study` writes them.

    CT slices come first (``ct_000`` ...), then radiographs (``xr_000`` ...).
    Labels are balanced (half positive, rounded down) and shuffled. About a
    quarter of the radiographs (at least one) are DICOM, with both labels
    among them when possible; the rest are PNG.

    Args:
        seed: Seed of everything random.
        n_ct: Number of CT slices.
        n_xray: Number of radiographs.

    Returns:
        One :class:`StudyItem` per image.
    """
    if n_ct < 0 or n_xray < 0 or n_ct + n_xray == 0:
        raise ValueError(f"need n_ct, n_xray >= 0 and at least one image, got {n_ct}, {n_xray}")
    items = []
    kinds: tuple[tuple[Literal["ct", "xray"], int, Any], ...] = (("ct", n_ct, ct_slice), ("xray", n_xray, radiograph))
    for kind, n, draw in kinds:
        rngs = _rngs(seed, _STREAM_STUDY, kind, n)
        labels = _balanced_labels(rngs[-1], n)
        as_dicom = _pick_dicom(labels, max(1, n // 4)) if kind == "xray" else set(range(n))
        prefix = "ct" if kind == "ct" else "xr"
        for i in range(n):
            image, mask = draw(rngs[i], lesion=bool(labels[i]))
            image_id = f"{prefix}_{i:03d}"
            ext = "dcm" if i in as_dicom else "png"
            items.append(
                StudyItem(
                    image_id, kind, image, mask, int(labels[i]), f"{kind}/{image_id}.{ext}", f"masks/{image_id}.png"
                )
            )
    return items


def write_study(out_dir: str | Path, *, seed: int = 0, n_ct: int = 24, n_xray: int = 12) -> Path:
    """Write the synthetic evaluation study and return its manifest path.

    Layout under ``out_dir``: ``ct/*.dcm`` (CT, MONOCHROME2, HU = stored -
    1024), ``xray/*.dcm`` (CR, MONOCHROME1) and ``xray/*.png`` (8-bit, bright
    = dense), ``masks/*.png`` (0/255, one per image: an all-zero file for a
    negative, so the ``mask`` column is never empty), ``manifest.csv``
    (``image_id,path,label,mask``, paths relative to ``out_dir``),
    ``ct_manifest.csv`` (the CT rows only: every image DICOM with a patient
    position, for the NIfTI/DICOM export demo) and ``README.txt``. See :func:`study_items` for the images. The same seed
    gives byte-identical files.

    Args:
        out_dir: Destination folder (created; existing files are overwritten).
        seed: Seed of everything random, including the UIDs.
        n_ct: Number of CT slices.
        n_xray: Number of radiographs.

    Returns:
        Path of ``manifest.csv``.
    """
    items = study_items(seed=seed, n_ct=n_ct, n_xray=n_xray)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = _uid("study", seed)
    series = {kind: _uid(f"{kind}-series", seed) for kind in ("ct", "xray")}
    for item in items:
        dicom_tags: dict[str, Any] = dict(
            uid_seed=(seed, item.image_id),
            study_uid=study_uid,
            series_uid=series[item.kind],
            instance_number=int(item.image_id[3:]) + 1,
            patient_id=f"SYNTH-{seed:04d}",
        )
        if item.kind == "ct":
            write_ct_dicom(out / item.path, item.image, **dicom_tags)
        elif item.path.endswith(".dcm"):
            write_xray_dicom(out / item.path, item.image, monochrome1=True, **dicom_tags)
        else:
            _write_png01(out / item.path, item.image)
        write_mask_png(out / item.mask_path, item.mask)

    manifest = out / "manifest.csv"
    for path, kinds in ((manifest, ("ct", "xray")), (out / "ct_manifest.csv", ("ct",))):
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["image_id", "path", "label", "mask"])
            writer.writerows([i.image_id, i.path, i.label, i.mask_path] for i in items if i.kind in kinds)
    (out / "README.txt").write_text(
        _README.format(
            seed=seed,
            n_ct=n_ct,
            n_xray=n_xray,
            n_xray_dcm=sum(item.kind == "xray" and item.path.endswith(".dcm") for item in items),
            wc=CT_WINDOW[0],
            ww=CT_WINDOW[1],
        ),
        encoding="utf-8",
    )
    return manifest


def _pick_dicom(labels: Sequence[int] | np.ndarray, k: int) -> set[int]:
    """``k`` indices alternating positive/negative, so both labels are present."""
    pos = [i for i, y in enumerate(labels) if y == 1]
    neg = [i for i, y in enumerate(labels) if y == 0]
    picked: list[int] = []
    while len(picked) < k and (pos or neg):
        for pool in (pos, neg):
            if pool and len(picked) < k:
                picked.append(pool.pop(0))
    return set(picked)
