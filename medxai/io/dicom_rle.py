"""The RLE Lossless frame check (PS3.5 Annex G): the header and every segment, before any decoder runs.

Decoders disagree on malformed RLE: pydicom's own decoder keeps what a segment
decodes to, cut or padded, and returns plausible but wrong pixels; pylibjpeg-rle
panics. :func:`rle_frame_problem` says what is wrong instead: the 64-byte header
(segment count, 15 offsets) against the frame, and each segment's PackBits
stream against the Rows x Columns bytes it must decode to.
"""

from __future__ import annotations

import struct

__all__ = ["RLE_HEADER_BYTES", "rle_frame_problem"]

#: The RLE header: the number of segments, then 15 segment offsets, each a little-endian uint32.
RLE_HEADER_BYTES = 64
_MAX_SEGMENTS = 15


def rle_frame_problem(frame: bytes, rows: int, columns: int, segments: int) -> str | None:
    """What is wrong with one RLE frame, or None when each segment decodes to exactly ``rows * columns`` bytes.

    Args:
        frame: The frame's encapsulated bytes (its fragment).
        rows: Rows of the image.
        columns: Columns of the image.
        segments: The segments the frame must hold: SamplesPerPixel x BitsAllocated / 8.

    Returns:
        The first problem found, naming the segment and the sizes, or None.
    """
    size = len(frame)
    if size < RLE_HEADER_BYTES:
        return f"the frame holds {size} bytes, less than the {RLE_HEADER_BYTES}-byte RLE header"
    count, *offsets = struct.unpack_from("<16I", frame)
    if count != segments:
        return f"the RLE header declares {count} segments, SamplesPerPixel x BitsAllocated / 8 needs {segments}"
    if offsets[0] != RLE_HEADER_BYTES:
        return f"RLE segment 1 starts at byte {offsets[0]}, not right after the {RLE_HEADER_BYTES}-byte RLE header"
    for k in range(1, _MAX_SEGMENTS):
        if k >= count and offsets[k]:
            return f"the RLE header's offset {k + 1} is {offsets[k]} but only {count} segments are declared (not 0)"
        if k < count and not offsets[k - 1] < offsets[k] < size:
            return (
                f"RLE segment {k + 1} of {count} starts at byte {offsets[k]}, not between segment {k}'s start "
                f"{offsets[k - 1]} and the frame's end {size}"
            )
    length = rows * columns
    ends = [*offsets[1:count], size]
    for k in range(count):
        problem = _segment_problem(frame, offsets[k], ends[k], length)
        if problem is not None:
            return f"RLE segment {k + 1} of {count} ({ends[k] - offsets[k]} bytes at byte {offsets[k]}) {problem}"
    return None


def _segment_problem(data: bytes, start: int, end: int, length: int) -> str | None:
    """What is wrong with the PackBits stream ``data[start:end]`` that must decode to ``length`` bytes, or None.

    One pass over the run headers, stopping once ``length`` bytes are decoded: a header
    ``n`` < 128 copies the next ``n + 1`` bytes, ``n`` > 128 repeats the next byte
    ``257 - n`` times, 128 does nothing. What is left may be one pad byte.
    """
    pos, out = start, 0
    while out < length and pos < end:
        n = data[pos]
        if n < 128:
            out += n + 1
            pos += n + 2
        elif n > 128:
            out += 257 - n
            pos += 2
        else:
            pos += 1
    if pos > end:
        return f"ends inside a run: its last run needs {pos - end} byte(s) more than the segment holds"
    if out > length:
        return f"decodes past the {length} bytes (Rows x Columns) a segment holds: its last run ends at byte {out}"
    if out < length:
        return f"decodes to only {out} of the {length} bytes (Rows x Columns) a segment holds"
    if end - pos > 1:
        return f"holds {end - pos} bytes past its {length} decoded bytes, where at most one pad byte may be"
    return None
