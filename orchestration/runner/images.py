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

`dimensions` reads a JPEG's or PNG's width and height from its header without decoding, so a
decompression bomb (a few kilobytes of PNG that claim 60000x60000 pixels, 10.8 GB as BGR) is
refused before any pixel is allocated (`server.decode_images`, ALGOSTAGE_MAX_IMAGE_PIXELS).
"""
from __future__ import annotations

import numpy as np

try:
    import simplejpeg
except ImportError:  # a package's own Dockerfile may not install the runner's requirements
    simplejpeg = None

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SOS, _APP1 = 0xDA, 0xE1
# start-of-frame markers (baseline, extended, progressive, lossless, ...): C0-CF but DHT, JPG, DAC
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def decode(blob: bytes) -> np.ndarray | None:
    """The image in `blob` as BGR (see the module contract)."""
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


def dimensions(blob: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame segment; None for other
    formats or a header that cannot be read (the decoder then decides)."""
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
