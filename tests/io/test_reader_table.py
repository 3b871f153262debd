"""The table of input formats: a new format is one module plus one ``register_reader`` call (issue 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medxai.io import ImageReadError, LoadedImage, read_image, register_reader, supported_suffixes, unregister_reader
from medxai.io.readers import READERS, kind_from_suffix, sniff_kind

_TOY_MAGIC = b"TOY1\n"


def _is_toy(head: bytes) -> bool:
    return head.startswith(_TOY_MAGIC)


def _read_toy(path: Path, *, max_pixels: int | None, timeout: float | None, on_corrupt: str) -> LoadedImage:
    """A toy format: the magic line, then rows of whitespace-separated numbers."""
    rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines()[1:] if line.strip()]
    return LoadedImage(np.asarray(rows, np.float32)[..., None], str(path), "toy")


@pytest.fixture
def toy_reader():
    reader = register_reader("toy", suffixes=(".toy",), sniff=_is_toy, read=_read_toy, name="Toy")
    try:
        yield reader
    finally:
        unregister_reader("toy")


def test_a_reader_written_before_on_corrupt_is_still_called(tmp_path):
    def old_read(path: Path, *, max_pixels: int | None, timeout: float | None) -> LoadedImage:
        return _read_toy(path, max_pixels=max_pixels, timeout=timeout, on_corrupt="error")

    register_reader("toy", suffixes=(".toy",), sniff=_is_toy, read=old_read)
    try:
        image = read_image(_toy_file(tmp_path / "a.toy"), on_corrupt="warn")
        assert image.kind == "toy" and image.array.shape == (2, 3, 1)
    finally:
        unregister_reader("toy")


def _toy_file(path: Path) -> Path:
    path.write_bytes(_TOY_MAGIC + b"1 2 3\n4 5 6\n")
    return path


def test_a_registered_reader_is_read_by_read_image_and_found_by_suffix_and_content(tmp_path, toy_reader):
    image = read_image(_toy_file(tmp_path / "a.toy"))
    assert image.kind == "toy" and image.array.shape == (2, 3, 1)
    np.testing.assert_array_equal(image.array[..., 0], [[1, 2, 3], [4, 5, 6]])
    assert image.meta["value_range"] == (1.0, 6.0) and image.meta["warnings"] == []
    assert ".toy" in supported_suffixes() and kind_from_suffix("A.TOY") == "toy"
    assert sniff_kind(_TOY_MAGIC) == "toy"
    renamed = read_image(_toy_file(tmp_path / "b.png"))  # known by content: the lying suffix is a warning
    assert renamed.kind == "toy" and "the file is named as PNG but its content is Toy" in renamed.meta["warnings"]


def test_a_registered_reader_names_its_format_in_errors_and_is_gone_once_unregistered(tmp_path, toy_reader):
    (tmp_path / "text.toy").write_text("not a toy\n")
    with pytest.raises(ImageReadError, match="not a Toy file"):
        read_image(tmp_path / "text.toy")
    unregister_reader("toy")
    try:
        assert ".toy" not in supported_suffixes() and "toy" not in READERS
        with pytest.raises(ImageReadError, match="unsupported file type"):
            read_image(_toy_file(tmp_path / "a.toy"))
    finally:
        register_reader("toy", suffixes=(".toy",), sniff=_is_toy, read=_read_toy, name="Toy")


def test_a_reader_may_not_take_a_kind_or_a_suffix_already_registered():
    with pytest.raises(ValueError, match="already registered"):
        register_reader("png", suffixes=(".png2",), sniff=_is_toy, read=_read_toy)
    with pytest.raises(ValueError, match="already read as 'dicom'"):
        register_reader("toy2", suffixes=(".dcm",), sniff=_is_toy, read=_read_toy)
    with pytest.raises(ValueError, match="lower case and starts with a dot"):
        register_reader("toy2", suffixes=("toy",), sniff=_is_toy, read=_read_toy)
    assert "toy2" not in READERS
