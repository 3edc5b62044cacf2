"""Decoding the images a request carries: JPEG through libjpeg-turbo directly (simplejpeg), anything
else — and any JPEG that path does not take — through OpenCV.

Why: `cv2.imdecode` of a 768x576 JPEG costs ~2.6 ms of CPU here, simplejpeg 1.3 ms for the very same
pixels (both are libjpeg-turbo 3 with SIMD; OpenCV's reader adds a colour pass and copies). In a video
run the runner decodes every frame while the model computes the one before, on the same cores, so
the decode is time taken from the model (docs/BENCHMARKS.md, "Video pipeline").

Contract of `decode`: a BGR uint8 array (H, W, 3), writable, or None when the data is not an image
OpenCV can decode. The pixels are those `cv2.imdecode(..., IMREAD_COLOR)` gives, EXIF orientation
included: a JPEG with an EXIF segment, a CMYK or otherwise unusual JPEG, or one libjpeg reports as
damaged goes to OpenCV, which decides (it may return the part it could decode, as before).

Raw frames: a body in NumPy's NPY format (`NPY_MAGIC`, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html)
holding a uint8 array in C order of shape (height, width, 3), BGR, or (height, width), grey, is
taken as the pixels themselves: no codec on either side. The video pipeline sends its frames so to
a runner on the same host (a 768x576 frame: ~0.3 ms to wrap and copy against ~1.3 ms to encode as
JPEG and ~1.4 ms to decode). `decode_raw` checks the header and the data strictly and raises
`RawFrameError` saying what is wrong (any other dtype or shape, Fortran order, data longer or
shorter than the shape says); nothing in the body is ever unpickled or evaluated.

`dimensions` reads a JPEG's, PNG's or raw frame's width and height from its header without
decoding, so a decompression bomb (a few kilobytes of PNG that claim 60000x60000 pixels, 10.8 GB
as BGR) is refused before any pixel is allocated (`server.decode_images`, ALGOSTAGE_MAX_IMAGE_PIXELS).
"""
from __future__ import annotations

import io
import math

import numpy as np
from numpy.lib import format as npy

try:
    import simplejpeg
except ImportError:  # a package's own Dockerfile may not install the runner's requirements
    simplejpeg = None

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = npy.MAGIC_PREFIX   # b"\x93NUMPY"
MAX_NPY_HEADER = 1024          # a frame's header is 128 bytes; numpy's own limit is 10000
_SOS, _APP1 = 0xDA, 0xE1
# start-of-frame markers (baseline, extended, progressive, lossless, ...): C0-CF but DHT, JPG, DAC
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class RawFrameError(ValueError):
    """A raw (NPY) frame that is not a uint8 BGR or grey image; the message says what is wrong."""


def decode(blob: bytes) -> np.ndarray | None:
    """The image in `blob` as BGR (see the module contract). RawFrameError for a bad raw frame."""
    if blob.startswith(NPY_MAGIC):
        return decode_raw(blob)
    if simplejpeg is not None and blob.startswith(JPEG_MAGIC) and not has_exif(blob):
        try:
            return simplejpeg.decode_jpeg(blob, colorspace="BGR")
        except ValueError:
            pass   # CMYK, 12-bit, damaged: OpenCV decides
    return decode_cv2(blob)


def decode_cv2(blob: bytes) -> np.ndarray | None:
    import cv2  # imported here so text and json runners do not pay for OpenCV

    try:
        return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:   # e.g. a size over OpenCV's own pixel limit: not an image we can take
        return None


def decode_raw(blob: bytes) -> np.ndarray:
    """The BGR pixels of a raw frame (NPY, see the module contract): a writable copy, grey expanded
    to three equal channels. RawFrameError when the header or the data is not such a frame."""
    shape, offset = raw_header(blob)
    data = len(blob) - offset
    if data != math.prod(shape):
        raise RawFrameError(f"the raw frame's header says shape {shape} ({math.prod(shape)} bytes of pixels) "
                            f"but {data} bytes follow it")
    pixels = np.frombuffer(blob, np.uint8, offset=offset).reshape(shape)
    if len(shape) == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels.copy()   # frombuffer of bytes is read-only; an algorithm may draw on its input


def raw_header(blob: bytes) -> tuple[tuple[int, ...], int]:
    """(shape, offset of the pixels) of a raw frame; RawFrameError unless the header describes a
    uint8 array in C order of shape (height, width, 3) or (height, width), both sides > 0."""
    fp = io.BytesIO(blob[:len(NPY_MAGIC) + 4 + MAX_NPY_HEADER])
    try:
        version = npy.read_magic(fp)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown NPY version {version[0]}.{version[1]}")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = read(fp, max_header_size=MAX_NPY_HEADER)
    except (ValueError, EOFError, SyntaxError, TypeError) as e:   # numpy's words for a bad header
        raise RawFrameError(f"not a readable NPY header: {e}") from None
    if dtype != np.uint8:
        raise RawFrameError(f"the raw frame holds {dtype} values; uint8 expected")
    if len(shape) not in (2, 3) or len(shape) == 3 and shape[2] != 3 or min(shape, default=0) <= 0:
        raise RawFrameError(f"the raw frame has shape {shape}; (height, width, 3) for BGR or (height, width) "
                            "for grey expected, both sides > 0")
    if fortran_order and len(shape) > 1:
        raise RawFrameError("the raw frame is in Fortran order; C order (rows one after the other) expected")
    return tuple(int(n) for n in shape), fp.tell()


def dimensions(blob: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, a JPEG's start-of-frame segment or a raw frame's header;
    None for other formats or a header that cannot be read (the decoder then decides)."""
    if blob.startswith(NPY_MAGIC):
        try:
            shape, _ = raw_header(blob)
        except RawFrameError:
            return None
        return shape[1], shape[0]
    if blob.startswith(PNG_MAGIC):
        if len(blob) >= 24 and blob[12:16] == b"IHDR":
            return int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
        return None
    if not blob.startswith(JPEG_MAGIC):
        return None
    pos, n = 2, len(blob)
    while pos + 4 <= n:
        if blob[pos] != 0xFF:
            return None
        marker = blob[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _SOF:
            if pos + 9 > n:
                return None
            return int.from_bytes(blob[pos + 7:pos + 9], "big"), int.from_bytes(blob[pos + 5:pos + 7], "big")
        if marker == _SOS:
            return None
        pos += 2 + int.from_bytes(blob[pos + 2:pos + 4], "big")
    return None


def has_exif(jpeg: bytes) -> bool:
    """True when the JPEG has an EXIF (APP1 "Exif") segment before its image data, or when its
    segments cannot be walked (then OpenCV, which applies EXIF orientation, reads it)."""
    pos, n = 2, len(jpeg)
    while pos + 4 <= n:
        if jpeg[pos] != 0xFF:
            return True
        marker = jpeg[pos + 1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if marker == _SOS:
            return False
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if marker == _APP1 and jpeg[pos + 4:pos + 10] == b"Exif\x00\x00":
            return True
        pos += 2 + length
    return True
