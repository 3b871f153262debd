"""Tests for medxai.viz.render: colour maps, overlays, montages and strongest-region outlines."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from skimage.morphology import disk

from medxai.viz.render import (
    OutlineSpec,
    apply_colormap,
    check_colormap,
    colorize,
    montage,
    outline,
    overlay,
    strongest_regions,
    with_colour_bar,
)

GREEN = (0, 255, 0)


def _grey(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A random display image ``(*shape, 1)`` in [0, 1]."""
    return np.random.default_rng(seed).random((*shape, 1)).astype(np.float32)


def _blob_and_speck(size: int = 40, k: int = 6) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A map with a disk-shaped blob (value 0.8) and one isolated hot pixel (1.0)."""
    blob = np.zeros((size, size), dtype=bool)
    blob[8 : 8 + 2 * k + 1, 8 : 8 + 2 * k + 1] = disk(k)
    heatmap = np.zeros((size, size), dtype=np.float32)
    heatmap[blob] = 0.8
    speck = (size - 5, size - 5)
    heatmap[speck] = 1.0
    return heatmap, blob, speck


# ------------------------------------------------------------ colorize / overlay


def test_check_colormap_names_the_bad_name():
    check_colormap("inferno")
    with pytest.raises(ValueError, match="'infernoo'"):
        check_colormap("infernoo")


@pytest.mark.parametrize("name", ["inferno", "viridis", "turbo", "gray", "jet"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_colormap_is_matplotlibs_colormap_exactly(name, dtype):
    import matplotlib

    values = np.random.default_rng(3).random((50, 40)).astype(dtype)
    values[0, :6] = [0.0, 1.0, 0.5, np.nan, np.nextafter(dtype(1), dtype(0)), 1 / 256]  # ends, NaN, bin edges
    assert np.array_equal(apply_colormap(values, name), matplotlib.colormaps[name](values)[..., :3])
    pictured = colorize(values, name)
    assert np.array_equal(pictured, (matplotlib.colormaps[name](values)[..., :3] * 255).round().astype(np.uint8))
    with pytest.raises(ValueError, match="'nope'"):
        apply_colormap(values, "nope")


def test_colour_bar_is_the_same_each_time_and_callers_cannot_change_it():
    picture = np.zeros((64, 10, 3), np.uint8)
    first, second = with_colour_bar(picture, "viridis", "MAP"), with_colour_bar(picture, "viridis", "MAP")
    assert np.array_equal(first, second) and first.flags.writeable
    first[:, 10:] = 0  # the returned picture is the caller's own
    assert np.array_equal(with_colour_bar(picture, "viridis", "MAP"), second)
    assert not np.array_equal(with_colour_bar(picture, "inferno", "MAP"), second)


def test_colorize_shape_and_dtype():
    picture = colorize(np.linspace(0, 1, 12).reshape(3, 4), "viridis")
    assert picture.shape == (3, 4, 3) and picture.dtype == np.uint8
    assert colorize(np.zeros((4, 5, 6))).shape == (10, 12, 3)  # 4 slices -> a 2 x 2 montage


def test_overlay_basics():
    image, heatmap = _grey((6, 7)), np.random.default_rng(1).random((6, 7))
    picture = overlay(image, heatmap, colormap="magma", alpha=0.7)
    assert picture.shape == (6, 7, 3) and picture.dtype == np.uint8
    grey = np.repeat((image * 255).round().astype(np.uint8), 3, axis=-1)
    np.testing.assert_array_equal(overlay(image, heatmap, alpha=0.0), grey)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"colormap": "not_a_map"}, "'not_a_map'"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"outline": {"top_percent": 0}}, "top_percent"),
    ],
)
def test_overlay_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        overlay(_grey((4, 4)), np.zeros((4, 4)), **kwargs)


def test_overlay_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        overlay(_grey((4, 4)), np.zeros((4, 5)))


# ------------------------------------------------------------ strongest_regions


def test_top_percent_picks_the_largest_values_without_cleanup():
    heatmap = np.arange(100, dtype=np.float32).reshape(10, 10) / 99  # 100 distinct values
    for top, count in [(10, 10), (25, 25), (0.5, 1), (100, 99)]:  # 100: the 99 non-zero values
        mask = strongest_regions(heatmap, top_percent=top, cleanup=False)
        assert mask.dtype == bool and mask.shape == heatmap.shape
        assert mask.sum() == count
        assert heatmap[mask].min() > heatmap[~mask].max()


def test_ties_at_the_threshold_are_all_kept():
    heatmap = np.full((5, 5), 0.5)
    assert strongest_regions(heatmap, top_percent=10, cleanup=False).all()


def test_top_percent_100_is_the_whole_non_zero_region():
    heatmap = np.zeros((8, 8))
    heatmap[2:6, 1:7] = np.linspace(0.1, 1, 24).reshape(4, 6)
    np.testing.assert_array_equal(strongest_regions(heatmap, top_percent=100, cleanup=False), heatmap > 0)


def test_cleanup_removes_the_speck_and_keeps_the_blob():
    heatmap, blob, speck = _blob_and_speck()
    raw = strongest_regions(heatmap, top_percent=100, cleanup=False)
    assert raw[speck] and raw.sum() == blob.sum() + 1
    for radius, min_size in [(1, 16), (2, 16), (0, 16), (1, 0)]:  # opening alone or size filter alone
        cleaned = strongest_regions(heatmap, top_percent=100, radius=radius, min_size=min_size)
        np.testing.assert_array_equal(cleaned, blob)


def test_cleanup_fills_a_pinhole():
    heatmap, blob, _ = _blob_and_speck()
    heatmap[14, 14] = 0  # the blob's centre
    assert not strongest_regions(heatmap, top_percent=100, cleanup=False)[14, 14]
    assert strongest_regions(heatmap, top_percent=100, radius=1)[14, 14]


def test_radius_0_and_min_size_0_change_nothing():
    heatmap = np.random.default_rng(2).random((20, 20))
    np.testing.assert_array_equal(
        strongest_regions(heatmap, top_percent=20, radius=0, min_size=0),
        strongest_regions(heatmap, top_percent=20, cleanup=False),
    )


def test_one_hot_pixel_is_removed_by_the_cleanup():
    heatmap = np.zeros((16, 16))
    heatmap[5, 5] = 1.0
    assert strongest_regions(heatmap, top_percent=100, cleanup=False).sum() == 1
    assert not strongest_regions(heatmap, min_size=2, radius=0).any()
    assert not strongest_regions(heatmap, min_size=0, radius=1).any()


@pytest.mark.parametrize("shape", [(12, 12), (3, 12, 12)])
def test_all_zero_map_has_no_region(shape):
    heatmap = np.zeros(shape)
    assert not strongest_regions(heatmap).any()
    assert not strongest_regions(heatmap, top_percent=100, cleanup=False).any()
    image = _grey(shape)
    np.testing.assert_array_equal(overlay(image, heatmap, outline={}), overlay(image, heatmap))


def test_volumes_threshold_over_the_volume_and_clean_up_slice_by_slice():
    heatmap, blob, speck = _blob_and_speck()
    volume = np.zeros((5, *heatmap.shape), dtype=np.float32)
    volume[2] = heatmap  # a finding on one slice only: a ball would erase it
    volume[4] = heatmap * 0.1  # weak slice: below the volume's threshold
    mask = strongest_regions(volume, top_percent=1, radius=1, min_size=16)
    expected = np.zeros(volume.shape, dtype=bool)
    expected[2] = blob
    np.testing.assert_array_equal(mask, expected)
    assert not mask[2][speck]


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2, 2)), np.full((3, 3), np.nan)])
def test_strongest_regions_rejects_bad_maps(bad):
    with pytest.raises(ValueError):
        strongest_regions(bad)


# --------------------------------------------------------------------- outline


def test_outline_is_the_inner_boundary_of_a_square():
    mask = np.zeros((9, 10), dtype=bool)
    mask[2:6, 3:8] = True  # rows 2..5, columns 3..7
    expected = np.zeros_like(mask)
    expected[2, 3:8] = expected[5, 3:8] = True  # top and bottom rows
    expected[2:6, 3] = expected[2:6, 7] = True  # left and right columns
    edges = outline(mask)
    assert edges.dtype == bool
    np.testing.assert_array_equal(edges, expected)
    assert edges.sum() == 2 * 5 + 2 * 2


def test_outline_is_closed_at_the_image_edge():
    mask = np.zeros((6, 6), dtype=bool)
    mask[:3, :3] = True
    expected = mask.copy()
    expected[1, 1] = False  # the only pixel with its 4 neighbours inside; the edge pixels are outline
    np.testing.assert_array_equal(outline(mask), expected)


def test_outline_of_a_volume_is_slice_by_slice():
    square = np.zeros((8, 8), dtype=bool)
    square[2:6, 2:6] = True
    volume = np.stack([square] * 3)
    # no filled caps on the first and last slices: each slice shows the ring
    np.testing.assert_array_equal(outline(volume), np.stack([outline(square)] * 3))
    assert not outline(np.zeros((0, 4, 4), dtype=bool)).any()


# --------------------------------------------------------------- overlay outline


def test_overlay_draws_the_colour_exactly_at_the_outline():
    heatmap, blob, _ = _blob_and_speck()
    image = _grey(heatmap.shape)
    spec = OutlineSpec(top_percent=100, radius=1, min_size=16, color=(255, 0, 255))
    plain = overlay(image, heatmap, alpha=0.6)
    picture = overlay(image, heatmap, alpha=0.6, outline=spec)
    edges = outline(blob)
    assert edges.any()
    np.testing.assert_array_equal(picture[edges], np.tile([255, 0, 255], (edges.sum(), 1)))
    np.testing.assert_array_equal(picture[~edges], plain[~edges])


def test_overlay_accepts_a_mapping():
    heatmap, _, _ = _blob_and_speck()
    image = _grey(heatmap.shape)
    np.testing.assert_array_equal(
        overlay(image, heatmap, outline={"top_percent": 5, "color": [0, 0, 255]}),
        overlay(image, heatmap, outline=OutlineSpec(top_percent=5, color=(0, 0, 255))),
    )


def test_only_outlines_on_the_grey_image():
    heatmap, blob, _ = _blob_and_speck()
    image = _grey(heatmap.shape)
    picture = overlay(image, heatmap, alpha=1.0, outline={"top_percent": 100, "only": True})
    edges = outline(blob)
    rest = picture[~edges]
    assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all()
    np.testing.assert_array_equal(rest[:, 0], (image[..., 0] * 255).round().astype(np.uint8)[~edges])
    np.testing.assert_array_equal(picture[edges], np.tile(GREEN, (edges.sum(), 1)))


def test_volume_outline_lines_up_with_the_montage():
    rng = np.random.default_rng(3)
    heatmap, _, _ = _blob_and_speck()
    volume = np.zeros((5, *heatmap.shape), dtype=np.float32)
    volume[1] = heatmap
    volume[3] = np.roll(heatmap, (6, 10), axis=(0, 1)) * 0.9
    volume += rng.random(volume.shape).astype(np.float32) * 0.05
    image = _grey(volume.shape, seed=4)
    spec = OutlineSpec(top_percent=3, color=(1, 2, 3))  # 240 of 8000 voxels; the blobs hold 226
    picture = overlay(image, volume, outline=spec)
    assert picture.shape[:2] == montage(volume).shape
    drawn = (picture == (1, 2, 3)).all(axis=-1)
    regions = strongest_regions(volume, top_percent=3)
    np.testing.assert_array_equal(drawn, montage(outline(regions)))
    assert drawn.any()
    # the outlines sit on the montage's hot places: the blobs on slices 1 and 3
    assert (montage(volume)[drawn] > 0.5).all()
    assert regions[1].any() and regions[3].any() and not regions[[0, 2, 4]].any()


# ------------------------------------------------------------------ OutlineSpec


def test_outline_spec_defaults_and_coercion():
    spec = OutlineSpec()
    assert dataclasses.asdict(spec) == {
        "top_percent": 10.0,
        "cleanup": True,
        "radius": 2,
        "min_size": 32,
        "color": (0, 255, 0),
        "only": False,
    }
    assert OutlineSpec.coerce(None) is None
    assert OutlineSpec.coerce(spec) is spec
    assert OutlineSpec.coerce({}) == spec
    coerced = OutlineSpec.coerce({"top_percent": 5, "color": [np.int64(1), 2, 3]})
    assert coerced.top_percent == 5.0 and isinstance(coerced.top_percent, float)
    assert coerced.color == (1, 2, 3) and all(type(c) is int for c in coerced.color)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.radius = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_percent": 0}, "top_percent: expected a number greater than 0 and at most 100, got 0"),
        ({"top_percent": 100.5}, "top_percent: expected a number greater than 0 and at most 100, got 100.5"),
        ({"top_percent": "10"}, "top_percent: expected a number greater than 0 and at most 100, got '10'"),
        ({"top_percent": True}, "top_percent: expected a number greater than 0 and at most 100, got true"),
        ({"top_percent": float("nan")}, "top_percent: expected a number greater than 0 and at most 100, got nan"),
        ({"cleanup": "yes"}, "cleanup: expected true or false, got 'yes'"),
        ({"only": 1}, "only: expected true or false, got 1"),
        ({"radius": -1}, "radius: expected a non-negative integer, got -1"),
        ({"radius": 1.5}, "radius: expected a non-negative integer, got 1.5"),
        ({"min_size": -2}, "min_size: expected a non-negative integer, got -2"),
        ({"color": (0, 255)}, "color: expected [r, g, b], three integers from 0 to 255, got [0, 255]"),
        ({"color": (0, 0, 256)}, "color: expected [r, g, b], three integers from 0 to 255, got [0, 0, 256]"),
        ({"color": (0.5, 0, 0)}, "color: expected [r, g, b], three integers from 0 to 255, got [0.5, 0, 0]"),
        ({"color": "red"}, "color: expected [r, g, b], three integers from 0 to 255, got 'red'"),
    ],
)
def test_outline_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        OutlineSpec(**kwargs)


def test_outline_spec_unknown_keys_get_a_suggestion():
    with pytest.raises(ValueError, match="unknown outline option 'top_pct' \\(did you mean 'top_percent'\\?\\)"):
        OutlineSpec.coerce({"top_pct": 5})
    with pytest.raises(ValueError, match="must be None, an OutlineSpec or a mapping"):
        OutlineSpec.coerce(10)  # type: ignore[arg-type]
