"""Malformed compressed pixel data is an error, or read with a warning naming the decoder, never silently (issue 25)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _files import dicom_dataset, frames_of, issue25_file, pydicom_file, rle_dicom, save, with_frames

from medxai.io import CorruptPixelDataError, ImageReadError, read_image
from medxai.io.dicom_rle import rle_frame_problem
from medxai.io.dicom_size import codestream_end_problem


def rle_frame(*segments: bytes) -> bytes:
    """An RLE frame: the 64-byte header (count, 15 offsets) then ``segments``."""
    offsets, at = [], 64
    for segment in segments:
        offsets.append(at)
        at += len(segment)
    return struct.pack("<16I", len(segments), *offsets, *[0] * (15 - len(segments))) + b"".join(segments)


def header_with(frame: bytes, index: int, value: int) -> bytes:
    """``frame`` with the header's uint32 number ``index`` (0: the count, k: offset k) set to ``value``."""
    data = bytearray(frame)
    struct.pack_into("<I", data, 4 * index, value)
    return bytes(data)


SIXTEEN_SEVENS = b"\xf1\x07"  # a 4 x 4 segment: 7 repeated 257 - 0xF1 = 16 times


OVERRUN, SHORT, CUT, LEFTOVER = b"\xf0\x07", b"\xf2\x07", b"\x0f" + bytes(10), SIXTEEN_SEVENS + b"\xff\x01"
ROWS_X_COLUMNS = "the 16 bytes (Rows x Columns) a segment holds"


@pytest.mark.parametrize(
    ("segment", "problem"),
    [
        (OVERRUN, f"RLE segment 1 of 1 (2 bytes at byte 64) decodes past {ROWS_X_COLUMNS}: its last run ends at "
         "byte 17"),
        (SHORT, f"RLE segment 1 of 1 (2 bytes at byte 64) decodes to only 15 of {ROWS_X_COLUMNS}"),
        (CUT, "RLE segment 1 of 1 (11 bytes at byte 64) ends inside a run: its last run needs 6 byte(s) more than the "
         "segment holds"),
        (LEFTOVER, "RLE segment 1 of 1 (4 bytes at byte 64) holds 2 bytes past its 16 decoded bytes, where at most "
         "one pad byte may be"),
    ],
)  # fmt: skip
def test_an_rle_segment_that_does_not_decode_to_rows_x_columns_bytes_is_named_with_its_sizes(segment, problem):
    assert rle_frame_problem(rle_frame(segment), 4, 4, 1) == problem


@pytest.mark.parametrize("segment", [SIXTEEN_SEVENS, SIXTEEN_SEVENS + b"\x00", b"\x80" + SIXTEEN_SEVENS + b"\x00"])
def test_a_segment_of_exactly_rows_x_columns_bytes_passes_with_a_pad_byte_or_a_no_op_run(segment):
    assert rle_frame_problem(rle_frame(segment), 4, 4, 1) is None


GOOD = rle_frame(SIXTEEN_SEVENS, SIXTEEN_SEVENS)


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (GOOD[:40], "the frame holds 40 bytes, less than the 64-byte RLE header"),
        (header_with(GOOD, 0, 3), "the RLE header declares 3 segments, SamplesPerPixel x BitsAllocated / 8 needs 2"),
        (header_with(GOOD, 1, 62), "RLE segment 1 starts at byte 62, not right after the 64-byte RLE header"),
        (header_with(GOOD, 2, 64), "RLE segment 2 of 2 starts at byte 64, not between segment 1's start 64 and the "
         "frame's end 68"),
        (header_with(GOOD, 2, 99), "RLE segment 2 of 2 starts at byte 99, not between"),
        (header_with(GOOD, 3, 7), "the RLE header's offset 3 is 7 but only 2 segments are declared (not 0)"),
    ],
)  # fmt: skip
def test_an_rle_header_that_does_not_fit_its_frame_is_named(frame, problem):
    assert rle_frame_problem(frame, 4, 4, 2).startswith(problem)
    assert rle_frame_problem(GOOD, 4, 4, 2) is None


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        (b"", None),
        (b"\x00", None),  # the pad byte of an odd codestream
        (b"\x00\x00\x00", "3 bytes follow the codestream's end marker (FFD9) at byte 4 of 9"),
    ],
)
def test_a_codestream_ends_with_its_end_marker_and_at_most_a_pad_byte(tail, problem):
    assert codestream_end_problem(b"\xff\xd8\x00\x00\xff\xd9" + tail) == problem
    assert codestream_end_problem(b"\xff\xd8\x00\x00\x12\x34") == (
        "the 6-byte codestream ends without its end marker (FFD9): truncated"
    )


# ------------------------------------------------------------------ files, both policies


def test_the_issue_25_file_is_an_error_naming_the_file_frame_segment_and_sizes(tmp_path):
    path = issue25_file(tmp_path / "overrun.dcm")
    with pytest.raises(CorruptPixelDataError) as caught:
        read_image(path)
    assert isinstance(caught.value, ImageReadError) and caught.value.path == os.fspath(path)
    assert str(caught.value) == (
        f"corrupt DICOM pixel data: {path} (frame 1 of 1: RLE segment 2 of 2 (4160 bytes at byte 1948) decodes "
        "past the 4096 bytes (Rows x Columns) a segment holds: its last run ends at byte 4162)"
    )


def test_the_issue_25_file_under_warn_is_read_with_a_warning_naming_the_decoder(tmp_path):
    path = issue25_file(tmp_path / "overrun.dcm")
    image = read_image(path, on_corrupt="warn")
    assert image.array.shape == (64, 64, 1)
    [warning] = image.meta["warnings"]
    assert warning.startswith("corrupt pixel data (frame 1 of 1: RLE segment 2 of 2 (4160 bytes at byte 1948) decodes")
    assert warning.endswith("pydicom decoded it anyway, the pixels may be wrong")


@pytest.mark.parametrize(
    ("pixels", "frames", "tags"),
    [
        (np.arange(48 * 40, dtype=np.uint16).reshape(48, 40) * 37, None, {}),
        (np.arange(2 * 24 * 24, dtype=np.int16).reshape(2, 24, 24) - 900, 2, {}),
        (np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3), None, {"photometric": "RGB"}),
    ],
)
def test_an_intact_rle_file_reads_bit_identical_to_its_pixels_without_a_warning(tmp_path, pixels, frames, tags):
    path = rle_dicom(tmp_path / "intact.dcm", pixels, frames=frames, **tags)
    image = read_image(path)
    expected = pixels.astype(np.float32)
    np.testing.assert_array_equal(image.array, expected if pixels.ndim == (4 if frames else 3) else expected[..., None])
    assert image.meta["warnings"] == []


def ramp_rle(tmp_path: Path, frames: int | None = None) -> Path:
    pixels = np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 3
    return rle_dicom(tmp_path / "ramp.dcm", np.stack([pixels] * frames) if frames else pixels, frames=frames)


def test_frames_past_number_of_frames_are_an_error_and_ignored_under_warn(tmp_path):
    source = ramp_rle(tmp_path, frames=2)
    ds = pydicom.dcmread(source)
    ds.NumberOfFrames = 1
    path = save(ds, tmp_path / "extra.dcm")
    with pytest.raises(CorruptPixelDataError, match="the pixel data holds more frames than NumberOfFrames = 1"):
        read_image(path)
    image = read_image(path, on_corrupt="warn")
    assert image.array.shape == (24, 24, 1)
    assert "corrupt pixel data (the pixel data holds more frames than NumberOfFrames = 1)" in image.meta["warnings"][0]


def test_a_segment_count_change_is_an_error_and_under_warn_names_the_decoder_that_read_it_anyway(tmp_path):
    [frame] = frames_of(ramp_rle(tmp_path))
    path = with_frames(ramp_rle(tmp_path), tmp_path / "count.dcm", [header_with(frame, 0, 1)])
    problem = "frame 1 of 1: the RLE header declares 1 segments, SamplesPerPixel x BitsAllocated / 8 needs 2"
    with pytest.raises(CorruptPixelDataError) as caught:
        read_image(path)
    assert str(caught.value) == f"corrupt DICOM pixel data: {path} ({problem})"
    image = read_image(path, on_corrupt="warn")  # pylibjpeg-rle reads the one segment it is told of
    assert image.meta["warnings"] == [
        f"corrupt pixel data ({problem}); pylibjpeg decoded it anyway, the pixels may be wrong"
    ]


@pytest.mark.parametrize("on_corrupt", ["error", "warn"])
def test_native_pixel_data_longer_than_declared_is_cut_with_a_warning_whatever_on_corrupt(tmp_path, on_corrupt):
    ds = dicom_dataset(np.arange(16, dtype=np.uint16).reshape(4, 4))
    ds.PixelData = ds.PixelData + bytes(96)  # three more frames' worth: never read as frames
    image = read_image(save(ds, tmp_path / "long.dcm"), on_corrupt=on_corrupt)
    np.testing.assert_array_equal(image.array[..., 0], np.arange(16).reshape(4, 4))
    assert image.meta["warnings"] == ["the pixel data is longer than its size tags say; the excess was ignored"]


def test_a_codestream_one_decoder_cannot_read_and_another_reads_is_not_corrupt():
    path = pydicom_file("GDCMJ2K_TextGBR.dcm")  # Pillow: "broken data stream"; OpenJPEG (pylibjpeg) reads it
    image = read_image(path)
    assert image.array.shape == (400, 400, 3) and image.meta["warnings"] == []


def test_a_truncated_jpeg_that_one_decoder_refuses_and_another_reads_names_both(tmp_path):
    source = pydicom_file("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline: Pillow, then pylibjpeg
    [frame] = frames_of(source)
    path = with_frames(source, tmp_path / "cut.dcm", [frame[: len(frame) - 172]])
    with pytest.raises(CorruptPixelDataError, match="ends without its end marker \\(FFD9\\): truncated"):
        read_image(path)
    image = read_image(path, on_corrupt="warn")
    [warning] = image.meta["warnings"]
    assert "pillow refused it: image file is truncated" in warning, warning
    assert warning.endswith("pylibjpeg decoded it anyway, the pixels may be wrong"), warning


def test_on_corrupt_must_be_error_or_warn(tmp_path):
    path = save(dicom_dataset(np.zeros((4, 4), np.uint16)), tmp_path / "a.dcm")
    with pytest.raises(ValueError, match="on_corrupt must be one of 'error', 'warn', got 'ignore'"):
        read_image(path, on_corrupt="ignore")  # type: ignore[arg-type]


def test_a_frame_decoded_to_another_size_than_the_header_says_is_corrupt(tmp_path):
    ds = pydicom.dcmread(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"))  # 100 x 100 RGB in the codestream
    ds.Rows = 102
    path = save(ds, tmp_path / "rows.dcm")
    wrong = "it decoded a frame of 30000 values, Rows x Columns x SamplesPerPixel is 30600"
    for on_corrupt in ("error", "warn"):  # no decoder reads it: an error under warn too
        with pytest.raises(CorruptPixelDataError) as caught:
            read_image(path, on_corrupt=on_corrupt)
        assert str(caught.value).startswith(f"corrupt DICOM pixel data: {path} (pillow: {wrong}; pylibjpeg: {wrong}")


def test_gdcm_reading_another_size_than_the_header_says_is_corrupt(tmp_path):
    pytest.importorskip("gdcm")
    ds = pydicom.dcmread(pydicom_file("JPEG-lossy.dcm"))  # 12-bit JPEG: only GDCM reads it, sized by itself
    ds.Rows = ds.Rows + 2
    path = save(ds, tmp_path / "rows.dcm")
    problem = "gdcm decoded 1 x 1024 x 256 (frames x rows x columns), the header declares 1 x 1026 x 256"
    with pytest.raises(CorruptPixelDataError, match=re.escape(f"{path} ({problem})")):
        read_image(path)
    image = read_image(path, on_corrupt="warn")
    assert image.meta["warnings"] == [
        f"corrupt pixel data ({problem}); gdcm decoded it anyway, the pixels may be wrong"
    ]
