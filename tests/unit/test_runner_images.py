"""orchestration.runner.images: JPEG through simplejpeg gives exactly OpenCV's pixels, and every JPEG
that path must not take (EXIF orientation, CMYK, damaged data) is OpenCV's to decide."""
from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest

from orchestration.runner import images


def photo(width: int = 96, height: int = 64) -> np.ndarray:
    """A colourful BGR picture with edges, so that decoders that differ would show it."""
    rng = np.random.default_rng(7)
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (200, 40, 10)
    cv2.circle(image, (width * 3 // 4, height // 2), height // 3, (20, 220, 90), -1)
    return cv2.add(image, rng.integers(0, 30, image.shape, dtype=np.uint8))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def cv2_decode(blob: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)


def with_orientation(blob: bytes, orientation: int) -> bytes:
    """`blob` with an EXIF APP1 segment saying `orientation` (6 = rotate 90° clockwise to show)."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return blob[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + blob[2:]


def test_a_jpeg_decodes_to_the_very_pixels_opencv_gives():
    blob = jpeg(photo())
    got = images.decode(blob)
    assert got is not None and got.dtype == np.uint8 and got.shape == (64, 96, 3)
    assert np.array_equal(got, cv2_decode(blob))
    got[0, 0] = 0   # an algorithm may draw on its input
    assert got.flags.writeable


def test_a_grey_jpeg_comes_back_as_three_equal_channels_like_opencv():
    blob = jpeg(cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY))
    got = images.decode(blob)
    assert got.shape == (64, 96, 3)
    assert np.array_equal(got, cv2_decode(blob))


def test_the_fast_path_is_the_one_taken_for_a_plain_jpeg(monkeypatch):
    calls = []
    monkeypatch.setattr(images, "decode_cv2", lambda blob: calls.append(blob))
    assert images.decode(jpeg(photo())) is not None
    assert calls == []


def test_exif_orientation_is_applied_as_opencv_does():
    blob = with_orientation(jpeg(photo()), 6)
    assert images.has_exif(blob)
    got = images.decode(blob)
    assert got.shape == (96, 64, 3)   # turned upright: width and height swap
    assert np.array_equal(got, cv2_decode(blob))


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_jpeg_gets_what_opencv_makes_of_it(cut):
    blob = jpeg(photo(320, 240))
    blob = blob[: int(len(blob) * cut)]
    got, want = images.decode(blob), cv2_decode(blob)
    assert (got is None) == (want is None)
    if want is not None:
        assert np.array_equal(got, want)


def test_png_and_garbage_go_to_opencv():
    ok, png = cv2.imencode(".png", photo())
    assert np.array_equal(images.decode(png.tobytes()), photo())
    assert images.decode(b"\xff\xd8\xff" + b"\x00" * 64) is None
    assert images.decode(b"not an image") is None


def test_without_simplejpeg_opencv_decodes_everything(monkeypatch):
    monkeypatch.setattr(images, "simplejpeg", None)
    blob = jpeg(photo())
    assert np.array_equal(images.decode(blob), cv2_decode(blob))


@pytest.mark.parametrize("blob, expected", [
    (b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02", False),              # APP0 then the scan
    (b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00\xff\xda", True),             # APP1 Exif
    (b"\xff\xd8\xff\xe1\x00\x08XMP!\x00\x00\xff\xda\x00\x02", False),    # APP1, not EXIF
    (b"\xff\xd8\xff\xe0\x00\x04ab\x12\x34\x56\x78", True),               # no marker where one must be
    (b"\xff\xd8\xff\xe0\x00\x40ab", True),                               # ends inside a segment
])
def test_has_exif_walks_the_segments_and_is_careful_when_it_cannot(blob, expected):
    assert images.has_exif(blob) is expected


@pytest.mark.parametrize("encode", [
    lambda img: cv2.imencode(".jpg", img)[1].tobytes(),
    lambda img: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
    lambda img: with_orientation(cv2.imencode(".jpg", img)[1].tobytes(), 6),
    lambda img: cv2.imencode(".png", img)[1].tobytes(),
])
def test_dimensions_are_read_from_the_header_without_decoding(encode):
    assert images.dimensions(encode(photo(96, 64))) == (96, 64)


@pytest.mark.parametrize("blob", [b"", b"GIF89a" + b"\0" * 30, b"\x89PNG\r\n\x1a\n" + b"\0" * 8,
                                  b"\xff\xd8\xff\xe0\x00\x10" + b"\0" * 4, b"\xff\xd8\xff\xda\x00\x08"])
def test_dimensions_of_what_is_not_a_readable_header_is_none(blob):
    assert images.dimensions(blob) is None


def test_an_opencv_error_is_no_image_rather_than_an_exception(monkeypatch):
    def refuse(*_args):
        raise cv2.error("imdecode_(): image size exceeds the limit")
    monkeypatch.setattr(cv2, "imdecode", refuse)
    assert images.decode_cv2(cv2.imencode(".png", photo())[1].tobytes()) is None


# --- raw frames (NPY) ----------------------------------------------------------------------------

def npy(array: np.ndarray, version: tuple[int, int] = (1, 0)) -> bytes:
    """`array` as numpy itself writes it (np.save's format), not as app.media does."""
    fp = io.BytesIO()
    np.lib.format.write_array(fp, array, version=version, allow_pickle=array.dtype == object)
    return fp.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_a_raw_frame_gives_its_very_pixels_writable(version):
    frame = photo()
    got = images.decode(npy(frame, version))
    assert got.dtype == np.uint8 and np.array_equal(got, frame)
    got[0, 0] = 0   # an algorithm may draw on its input
    assert got.flags.writeable


def test_a_grey_raw_frame_comes_back_as_three_equal_channels():
    grey = cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY)
    got = images.decode(npy(grey))
    assert got.shape == (64, 96, 3) and all(np.array_equal(got[:, :, c], grey) for c in range(3))


def test_a_raw_frame_from_app_media_is_decoded_to_the_same_pixels():
    from app.media import encode_raw
    frame = photo(97, 31)
    assert np.array_equal(images.decode(encode_raw(frame)), frame)
    assert np.array_equal(images.decode(encode_raw(frame[:, ::2])), frame[:, ::2])   # a strided view is sent whole


@pytest.mark.parametrize("blob, fragment", [
    (npy(photo().astype(np.float32)), "holds float32 values; uint8 expected"),
    (npy(np.zeros((64, 96, 4), np.uint8)), "has shape (64, 96, 4)"),
    (npy(np.zeros((5, 64, 96, 3), np.uint8)), "has shape (5, 64, 96, 3)"),
    (npy(np.zeros(100, np.uint8)), "has shape (100,)"),
    (npy(np.zeros((0, 96, 3), np.uint8)), "both sides > 0"),
    (npy(np.asfortranarray(photo())), "Fortran order"),
    (npy(photo())[:-1], "(18432 bytes of pixels) but 18431 bytes follow it"),
    (npy(photo()) + b"\0", "(18432 bytes of pixels) but 18433 bytes follow it"),
    (npy(photo())[:40], "not a readable NPY header"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': os}   \n", "not a readable NPY header"),
    (b"\x93NUMPY\x09\x00" + npy(photo())[8:], "not a readable NPY header: unknown NPY version 9.0"),
    (npy(np.array([{"a": 1}], dtype=object)), "holds object values"),   # never unpickled
])
def test_a_raw_frame_that_is_not_a_bgr_or_grey_image_is_refused_saying_why(blob, fragment):
    with pytest.raises(images.RawFrameError) as e:
        images.decode(blob)
    assert fragment in str(e.value)


def test_dimensions_of_a_raw_frame_come_from_its_header_alone():
    header = npy(np.zeros((64, 96, 3), np.uint8))[:128]
    assert images.dimensions(header) == (96, 64)
    assert images.dimensions(npy(photo().astype(np.int16))) is None   # not a frame: decode says why
