"""3D pictures never hide the peak: chosen slices, numbered tiles, colour bars, display transform, orthogonal views."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from medxai.io.formats import MapToWrite, output_formats
from medxai.viz.render import (
    choose_slices,
    colorize,
    colour_bar_width,
    display_values,
    montage,
    orthogonal_views,
    overlay,
    read_layout,
    with_colour_bar,
)

DEPTH, SIDE, LESION = 32, 32, 5  # even spacing of 16 out of 32 slices skips slice 5


def lesion_volume() -> np.ndarray:
    """Faint noise everywhere, and a bright one-slice lesion on slice LESION."""
    heat = np.random.default_rng(0).random((DEPTH, SIDE, SIDE)).astype(np.float32) * 0.05
    heat[LESION, 10:20, 12:22] = 1.0
    return heat


def to_write(folder: Path, heatmap: np.ndarray, display: bool = True, **extra) -> MapToWrite:
    image = np.random.default_rng(1).random((*heatmap.shape, 1)).astype(np.float32) if display else None
    return MapToWrite(heatmap, folder, Path("maps") / "ig" / "vol_c0", "ig", 0, display=image, **extra)


def written(map_: MapToWrite, fmt: str) -> dict[str, str]:
    return output_formats()[fmt].write(map_)


def read(path: Path) -> tuple[np.ndarray, int, tuple[int, ...] | None]:
    with Image.open(path) as picture:
        bar, slices = read_layout(picture.text)
        return np.asarray(picture.convert("RGB")), bar, slices


def tile(picture: np.ndarray, k: int, count: int) -> np.ndarray:
    cols = int(np.ceil(np.sqrt(count)))
    r, c = divmod(k, cols)
    return picture[r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE]


TOP = (np.array(matplotlib.colormaps["inferno"](1.0)[:3]) * 255).round()


def test_even_spacing_alone_would_skip_the_lesion_slice():
    old = np.unique(np.linspace(0, DEPTH - 1, 16).round().astype(int))
    assert LESION not in old
    assert montage(lesion_volume()).max() < 1.0  # the old montage: the lesion never shows


@pytest.mark.parametrize("fmt", ["png", "overlay"])
def test_the_picture_shows_the_lesion_slice(tmp_path, fmt):
    map_ = to_write(tmp_path, lesion_volume(), transform="none")
    picture, bar, slices = read(tmp_path / written(map_, fmt)[f"{fmt}_path" if fmt == "overlay" else "png_path"])
    assert slices == map_.montage_slices() and LESION in slices and len(slices) == 16
    assert list(slices) == sorted(slices)
    assert bar == colour_bar_width(picture.shape[0]) and picture.shape[1] == 4 * SIDE + bar
    lesion_tile = tile(picture, slices.index(LESION), len(slices))
    other_tile = tile(picture, slices.index(LESION) + 1, len(slices))
    if fmt == "png":
        assert (lesion_tile[12:18, 14:20] == TOP).all()  # the lesion at the colormap's top colour
        assert not (other_tile[8:, 8:] == TOP).all(axis=-1).any()
    else:
        assert lesion_tile[12:18, 14:20].mean() > other_tile[12:18, 14:20].mean() + 40


def test_the_default_display_still_tells_the_lesion_slice(tmp_path):
    map_ = to_write(tmp_path, lesion_volume())
    picture, _, slices = read(tmp_path / written(map_, "png")["png_path"])
    brightness = [tile(picture, k, len(slices))[8:, 8:].mean() for k in range(len(slices))]
    assert int(np.argmax(brightness)) == slices.index(LESION)


def test_the_default_display_keeps_the_top_colour_for_the_peak(tmp_path):
    heat = lesion_volume()
    picture, _, slices = read(tmp_path / written(to_write(tmp_path, heat), "png")["png_path"])
    tiles = [tile(picture, k, len(slices))[8:, 8:] for k in range(len(slices))]
    at_top = [int((t == TOP).all(axis=-1).sum()) for t in tiles]
    assert at_top[slices.index(LESION)] > 0 and sum(at_top) == at_top[slices.index(LESION)]
    clipped = display_values(heat, "percentile", 99)  # the lesion is under 1 % of the volume: noise saturates
    assert (clipped[np.arange(DEPTH) != LESION] == 1).any()


def test_png_and_overlay_show_the_same_slices(tmp_path):
    map_ = to_write(tmp_path, lesion_volume(), slices="even")
    _, _, png_slices = read(tmp_path / written(map_, "png")["png_path"])
    _, _, overlay_slices = read(tmp_path / written(map_, "overlay")["overlay_path"])
    assert png_slices == overlay_slices == map_.montage_slices()


def test_even_includes_the_peak_and_all_shows_every_slice():
    heat = lesion_volume()
    even = choose_slices(heat, "even", 16)
    assert len(even) == 16 and LESION in even and LESION - 1 not in even  # the nearest one replaced
    assert choose_slices(heat, "all") == tuple(range(DEPTH))
    assert montage(heat, choose_slices(heat, "all")).shape == (6 * SIDE, 6 * SIDE)
    top = choose_slices(heat, "top_mass", 3)
    assert LESION in top and len(top) == 3
    peak_only = np.zeros_like(heat)
    peak_only[20, 0, 0] = 1.0  # a peak on a slice holding little mass still comes first
    peak_only[:3] += 0.01
    assert 20 in choose_slices(peak_only, "top_mass", 2)


def test_all_writes_every_slice(tmp_path):
    map_ = to_write(tmp_path, lesion_volume(), slices="all")
    picture, bar, slices = read(tmp_path / written(map_, "png")["png_path"])
    assert slices == tuple(range(DEPTH)) and picture.shape[0] == 6 * SIDE


def test_tiles_are_numbered_with_their_slice_index():
    heat = np.zeros((DEPTH, SIDE, SIDE), np.float32)  # every tile alike but for its number
    slices = (0, 7, 12, 31)
    picture = colorize(heat, slices=slices)
    corners = [tile(picture, k, len(slices))[:8, :12] for k in range(len(slices))]
    for a in range(len(corners)):
        for b in range(a + 1, len(corners)):
            assert not np.array_equal(corners[a], corners[b])
    assert all((c == 255).any() for c in corners)  # white digits
    assert np.array_equal(tile(picture, 0, 4)[10:], tile(picture, 1, 4)[10:])  # the rest of the tile untouched


@pytest.mark.parametrize("shape", [(48, 40), (DEPTH, SIDE, SIDE)])
def test_every_picture_has_a_colour_bar(tmp_path, shape):
    heat = np.random.default_rng(2).random(shape).astype(np.float32)
    map_ = to_write(tmp_path, heat)
    for column in ("png_path", "overlay_path"):
        fmt = "png" if column == "png_path" else "overlay"
        picture, bar, _ = read(tmp_path / written(map_, fmt)[column])
        assert bar == colour_bar_width(picture.shape[0]) > 0
        strip = picture[:, picture.shape[1] - bar :]
        ramp = (matplotlib.colormaps["inferno"](np.linspace(1, 0, picture.shape[0]))[:, :3] * 255).round()
        assert np.array_equal(strip[10:-10, 3], ramp[10:-10])  # the colormap, 1 at the top, 0 at the bottom
        assert (strip[:7, 8:] == 255).any() and (strip[-7:, 8:] == 255).any()  # the "1" and "0" ticks


def test_the_colour_bar_says_what_it_shows():
    picture = np.zeros((128, 64, 3), np.uint8)
    clipped = with_colour_bar(picture, caption="MAP CLIP P99")
    plain = with_colour_bar(picture, caption="MAP")
    assert clipped.shape == plain.shape and not np.array_equal(clipped, plain)


def test_the_display_transform_never_changes_the_npy(tmp_path):
    heat = np.zeros((40, 40), np.float32)
    heat[5:8, 5:8] = 0.3  # sparse and faint
    files = {}
    for transform in ("percentile", "none", "gamma"):
        folder = tmp_path / transform
        map_ = to_write(folder, heat, transform=transform)
        files[transform] = (
            (folder / written(map_, "npy")["npy_path"]).read_bytes(),
            read(folder / written(map_, "png")["png_path"])[0],
        )
    assert files["percentile"][0] == files["none"][0] == files["gamma"][0]
    assert np.array_equal(np.load(tmp_path / "none" / "maps" / "ig" / "vol_c0.npy"), heat)
    assert files["percentile"][1][6, 6].tolist() == TOP.tolist()  # clipped at p99: the top colour
    assert not np.array_equal(files["none"][1], files["gamma"][1])


def test_a_sparse_map_shows_in_the_overlay():
    heat = np.zeros((50, 50), np.float32)
    heat[20:25, 20:25] = np.linspace(0.05, 0.3, 25).reshape(5, 5)  # 1 % of pixels, all faint
    grey = np.full((50, 50, 1), 0.5, np.float32)
    before = overlay(grey, heat, alpha=0.5)
    after = overlay(grey, heat, alpha=0.5, values=display_values(heat))  # the default: gamma 0.5
    base = (grey[..., 0] * 255).round()
    moved = lambda picture: np.abs(picture.astype(float) - base[..., None]).max(axis=-1)  # noqa: E731
    assert moved(after)[20, 20] > 3 * moved(before)[20, 20]  # the faintest part of the map: drawn at last
    assert moved(after)[20:25, 20:25].mean() > 1.5 * moved(before)[20:25, 20:25].mean()
    assert (moved(after)[:15] == 0).all()  # zero stays the image itself


def test_orthogonal_views_pass_through_the_peak(tmp_path):
    heat = np.zeros((12, 20, 24), np.float32)
    heat[7, 13, 4] = 1.0
    heat[2, 3, 3] = 0.5
    picture, peak = orthogonal_views(heat)
    assert peak == (7, 13, 4)
    axial = picture[:20, :24]  # [z] -> (H, W)
    coronal = picture[:12, 26 : 26 + 24]  # [:, y] -> (D, W)
    sagittal = picture[:12, 52 : 52 + 20]  # [:, :, x] -> (D, H)
    assert (axial[13, 4] == TOP).all() and (coronal[7, 4] == TOP).all() and (sagittal[7, 13] == TOP).all()
    map_ = to_write(tmp_path, heat)
    out = written(map_, "png")
    ortho, bar, _ = read(tmp_path / out["ortho_path"])
    assert out["ortho_path"] == "maps/ig/vol_c0.ortho.png" and bar == colour_bar_width(ortho.shape[0])
    flat = to_write(tmp_path / "flat", np.ones((8, 8), np.float32))
    assert "ortho_path" not in written(flat, "png")  # 2D maps: no orthogonal views


# ------------------------------------------------------------------ the report lays masks out like the pictures


def report_pictures(root: Path):
    from types import SimpleNamespace

    from medxai.viz.report.pictures import Pictures

    return Pictures(SimpleNamespace(root=root, info={"config": {"output": {"montage": {"slices": "top_mass"}}}}))


def test_the_report_reads_a_pictures_slices_and_leaves_its_colour_bar_out(tmp_path):
    from medxai.viz.report.loading import MapRow

    map_ = to_write(tmp_path, lesion_volume())
    paths = {**written(map_, "npy"), **written(map_, "png"), **written(map_, "overlay")}
    row = MapRow("vol", "ig", 0, 1.0, "ok", "", paths, 0.0, 0.0, "")
    pictures = report_pictures(tmp_path)
    for kinds in (("overlay",), ("heatmap",), ("npy",)):  # the .npy fallback chooses the same slices
        picture = pictures.picture(row, kinds)
        assert picture.slices == map_.montage_slices()
        assert picture.rgb is not None and picture.rgb.shape[:2] == (4 * SIDE, 4 * SIDE)


def test_the_report_tiles_a_region_and_a_mask_with_the_maps_slices(tmp_path):
    from medxai.viz.report.cards import _Mask
    from medxai.viz.report.pictures import tiled

    region = np.zeros((DEPTH, SIDE, SIDE), bool)
    region[LESION, 10:20, 12:22] = True
    np.save(tmp_path / "region.npy", region)
    slices = choose_slices(lesion_volume())
    laid_out, problem = report_pictures(tmp_path).region("region.npy", slices)
    assert problem == "" and laid_out is not None and laid_out.shape == (4 * SIDE, 4 * SIDE)
    assert tile(laid_out, slices.index(LESION), len(slices)).sum() == region.sum()  # on the lesion's tile
    assert not tiled(region, None).any()  # the old even montage never showed it
    mask = _Mask(None, "outline", None, [], "", volume=region, bound=False)
    rgb = np.zeros((4 * SIDE, 4 * SIDE, 3), np.uint8)
    assert mask.fits(rgb, slices) and mask.outline is not None  # laid out like the first map
    other = choose_slices(lesion_volume(), "even")
    assert not mask.fits(rgb, other) and "other slices" in mask.mismatch_note(rgb, other)
