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
mask. :func:`medxai.data.study_files.write_study` writes a small evaluation study (DICOM and
PNG, with 0/255 PNG masks and a ``manifest.csv``); :func:`make_dataset` draws any
number of in-memory images for training, from a random stream that never
overlaps the study's, so a training set built with ``seed=0`` does not
contain the study built with ``seed=0``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi

__all__ = ["CT_WINDOW", "CT_RESCALE_INTERCEPT", "ct_slice", "ct_volume", "radiograph", "make_dataset", "make_volumes"]

#: (center, width) in HU written to the CT files: the soft-tissue window,
#: in which both the lung nodules and the soft-tissue lesions are visible.
CT_WINDOW: tuple[float, float] = (40.0, 400.0)
#: Stored value = HU - CT_RESCALE_INTERCEPT (RescaleSlope is 1).
CT_RESCALE_INTERCEPT = -1024
#: Largest stored value of the 12-bit radiograph DICOM files.
XRAY_MAX_STORED = 4095

HU_MIN, HU_MAX = -1024.0, 3071.0
# Keep the study's and make_dataset's random streams apart (see module doc).
STREAM_STUDY, _STREAM_TRAIN = 1, 2
_KIND_CODE = {"ct": 1, "xray": 2}


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
    hu = np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.float32)
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


def balanced_labels(rng: np.random.Generator, n: int, positive_fraction: float = 0.5) -> np.ndarray:
    n_pos = int(round(n * positive_fraction))
    labels = np.zeros(n, dtype=np.int64)
    labels[:n_pos] = 1
    return rng.permutation(labels)


def random_streams(seed: int, stream: int, kind: str, n: int) -> list[np.random.Generator]:
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
    rngs = random_streams(seed, _STREAM_TRAIN, kind, n)
    labels = balanced_labels(rngs[-1], n, positive_fraction)
    draw = ct_slice if kind == "ct" else radiograph
    images = np.empty((n, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        images[i], masks[i] = draw(rngs[i], lesion=bool(labels[i]), size=size)
    return images, masks, labels


# --------------------------------------------------------------------------
# 3D: CT-like volumes
# --------------------------------------------------------------------------
#: Voxel spacing of the synthetic volumes in array order ``(slice, row, column)``, in mm.
VOLUME_SPACING: tuple[float, float, float] = (2.5, 1.0, 1.0)
_STREAM_VOLUME = 3  # the volumes' own spawn key (never the 2D streams' kind codes)


def ct_volume(
    rng: np.random.Generator,
    *,
    lesion: bool,
    size: int = 32,
    depth: int = 32,
    lesion_slices: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A small CT-like chest volume in Hounsfield units: a stack of axial slices.

    The anatomy is one :func:`ct_slice` (drawn at 64x64 without a lesion and
    averaged down to ``size`` when ``size`` is smaller) repeated along the
    slices with fresh noise per slice. A positive volume carries one lesion
    (a solid nodule in a lung, or a hyperdense lesion in soft tissue):
    roughly spherical in millimetres (slices 2.5 mm apart, pixels 1 mm, see
    :data:`VOLUME_SPACING`) so it spans a few slices, or, with
    ``lesion_slices=k``, confined to exactly ``k`` consecutive slices
    (``lesion_slices=1``: a lesion on one slice only, the case an evenly
    spaced montage can miss).

    Args:
        rng: The random generator (the only source of randomness).
        lesion: Whether to draw a lesion (label 1).
        size: Height and width in pixels (at least 16).
        depth: Number of slices (at least 4).
        lesion_slices: None for a spherical lesion, else the exact number of
            slices the lesion occupies (1 to ``depth // 2``).

    Returns:
        ``(hu, mask)``: ``hu`` float32 ``(depth, size, size)`` of whole HU values
        in [-1024, 3071], ``mask`` bool of the same shape, all False when
        ``lesion`` is False.

    Example:
        >>> hu, mask = ct_volume(np.random.default_rng(0), lesion=True, lesion_slices=1)
        >>> hu.shape, int(mask.any(axis=(1, 2)).sum())
        ((32, 32, 32), 1)
    """
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    if not isinstance(depth, (int, np.integer)) or depth < 4:
        raise ValueError(f"depth must be an integer >= 4, got {depth!r}")
    if lesion_slices is not None and not (
        isinstance(lesion_slices, (int, np.integer)) and 1 <= lesion_slices <= depth // 2
    ):
        raise ValueError(f"lesion_slices must be None or an integer from 1 to {depth // 2}, got {lesion_slices!r}")
    base, _ = ct_slice(rng, lesion=False, size=max(64, size))
    if base.shape[0] != size:
        base = ndi.zoom(
            ndi.gaussian_filter(base.astype(np.float64), 0.5 * base.shape[0] / size), size / base.shape[0], order=1
        )
    base = base.astype(np.float64)
    hu = np.repeat(base[None], depth, axis=0)
    mask = np.zeros(hu.shape, dtype=bool)
    if lesion:
        mask, hu = _add_volume_lesion(rng, hu, base, lesion_slices)
    hu += 6.0 * _correlated_noise(rng, hu.shape, 0.8) + rng.normal(0.0, 5.0, hu.shape)
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.float32), mask


def _add_volume_lesion(rng, hu, base, lesion_slices):
    depth, size = hu.shape[0], hu.shape[1]
    body = ndi.binary_fill_holes(base > -500)
    lungs = body & (base < -600)
    soft = body & (base > -200) & (base < 200)
    region_is_lung = bool(rng.random() < 0.5)
    if not (lungs if region_is_lung else soft).any():
        region_is_lung = not region_is_lung
    # The centre: deep inside the region (at 32x32 a lung is only ~8 px wide, so the
    # lesion may overlap the region's edge a little).
    room = ndi.distance_transform_edt(lungs if region_is_lung else soft)
    candidates = np.flatnonzero(room >= 0.6 * room.max())
    cy, cx = (float(v) for v in np.unravel_index(candidates[rng.integers(candidates.size)], room.shape))
    radius = min(rng.uniform(2.5, 4.5) * size / 32.0, max(float(room.max()) + 1.0, 2.0))  # mm = pixels
    dz_mm = VOLUME_SPACING[0]
    if lesion_slices is None:
        reach = int(np.floor(radius / dz_mm))
        z0 = int(rng.integers(reach + 1, depth - reach - 1))
        zs = np.arange(z0 - reach, z0 + reach + 1)
        radii = np.sqrt(np.maximum(radius**2 - ((zs - z0) * dz_mm) ** 2, 0.0))
    else:
        z0 = int(rng.integers(1, depth - lesion_slices))
        zs = np.arange(z0, z0 + lesion_slices)
        t = (zs - (z0 + (lesion_slices - 1) / 2.0)) / (lesion_slices / 2.0)
        radii = radius * np.sqrt(np.maximum(1.0 - t**2, 0.3))
    radii = np.maximum(radii, 1.0)
    yy, xx = _grid(size)
    target = rng.uniform(-60.0, 60.0)
    boost = rng.uniform(80.0, 140.0)
    mask = np.zeros(hu.shape, dtype=bool)
    for z, r in zip(zs, radii):
        mask[z], weight = _lesion_shape(rng, yy, xx, cy, cx, float(r))
        if region_is_lung:
            hu[z] = hu[z] * (1.0 - weight) + target * weight
        else:
            hu[z] = hu[z] + boost * weight
    return mask, hu


def volume_streams(seed: int, stream: int, n: int) -> list[np.random.Generator]:
    """One independent random stream per volume (and one more for the labels), apart from the 2D streams."""
    root = np.random.SeedSequence(seed, spawn_key=(stream, _STREAM_VOLUME))
    return [np.random.default_rng(child) for child in root.spawn(n + 1)]


def make_volumes(
    n: int,
    *,
    seed: int,
    size: int = 32,
    depth: int = 32,
    positive_fraction: float = 0.5,
    one_slice_fraction: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Any number of CT-like volumes (:func:`ct_volume`) for training, in memory.

    The random stream differs from the 3D study's
    (:func:`medxai.data.study_files.write_volume_study`).

    Args:
        n: Number of volumes.
        seed: Seed; the same seed gives the same arrays.
        size: Height and width.
        depth: Number of slices.
        positive_fraction: Share of label-1 volumes (rounded to a count).
        one_slice_fraction: Share of the positives whose lesion lies on one slice only.

    Returns:
        ``(volumes, masks, labels)``: float32 ``(n, depth, size, size)`` in HU,
        bool of the same shape, int64 ``(n,)``.

    Example:
        >>> x, m, y = make_volumes(2, seed=1)
        >>> x.shape, int(y.sum())
        ((2, 32, 32, 32), 1)
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rngs = volume_streams(seed, _STREAM_TRAIN, n)
    labels = balanced_labels(rngs[-1], n, positive_fraction)
    one_slice = rngs[-1].random(n) < one_slice_fraction
    volumes = np.empty((n, depth, size, size), dtype=np.float32)
    masks = np.empty((n, depth, size, size), dtype=bool)
    for i in range(n):
        volumes[i], masks[i] = ct_volume(
            rngs[i], lesion=bool(labels[i]), size=size, depth=depth, lesion_slices=1 if one_slice[i] else None
        )
    return volumes, masks, labels
