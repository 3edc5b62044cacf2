"""Raw frames (NPY) through a real runner process: the pixels arrive as they were sent, by every
way an image task takes a body, and a frame that is not a uint8 BGR or grey image is a 400 saying
why, after which the runner serves on."""
from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from app.media import encode_raw
from tests.runner_process import RunnerProcess, jpeg, ready_runner

hello_image = ready_runner("hello_image")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def frame(width: int, height: int) -> np.ndarray:
    """A BGR frame whose first pixel is (11, 22, 33) and whose other pixels differ from it."""
    image = np.arange(width * height * 3, dtype=np.uint32).reshape(height, width, 3).astype(np.uint8)
    image[0, 0] = (11, 22, 33)
    return image


def npy(array: np.ndarray) -> bytes:
    fp = io.BytesIO()
    np.save(fp, array, allow_pickle=False)
    return fp.getvalue()


def still_serving(runner: RunnerProcess, client: httpx.Client) -> bool:
    r = client.post(f"{runner.url}/predict", content=jpeg(16, 16), headers={"Content-Type": "image/jpeg"})
    return r.status_code == 200


@pytest.mark.parametrize("ctype", ["application/octet-stream", "application/x-npy", ""])
def test_a_raw_frame_body_reaches_predict_as_its_pixels(hello_image: RunnerProcess, client: httpx.Client,
                                                        ctype: str) -> None:
    r = client.post(f"{hello_image.url}/predict?min_size=40", content=encode_raw(frame(64, 48)),
                    headers={"Content-Type": ctype} if ctype else {})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [48, 64, 3] and out["dtype"] == "uint8" and out["pixel"] == [11, 22, 33]
    assert out["boxes"] == [{"x": 0, "y": 0, "w": 64, "h": 48, "label": "image", "score": 1.0}]


def test_raw_frames_and_jpeg_mix_in_one_multipart_batch(hello_image: RunnerProcess, client: httpx.Client) -> None:
    grey = np.full((10, 20), 7, np.uint8)
    files = [("images", ("a.npy", encode_raw(frame(30, 20)), "application/octet-stream")),
             ("images", ("b.jpg", jpeg(40, 30), "image/jpeg")),
             ("images", ("c.npy", npy(grey), "application/x-npy"))]
    r = client.post(f"{hello_image.url}/predict", files=files)
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    assert [o["shape"] for o in outputs] == [[20, 30, 3], [30, 40, 3], [10, 20, 3]]
    assert outputs[0]["pixel"] == [11, 22, 33] and outputs[2]["pixel"] == [7, 7, 7]


@pytest.mark.parametrize("body, fragment", [
    (npy(frame(64, 48))[:-10], ("the raw frame's header says shape (48, 64, 3) (9216 bytes of pixels) but 9206 "
                                "bytes follow it")),
    (npy(frame(64, 48)) + b"\0" * 3, "but 9219 bytes follow it"),
    (npy(frame(64, 48).astype(np.float32)), "holds float32 values; uint8 expected"),
    (npy(np.zeros((48, 64, 4), np.uint8)), "has shape (48, 64, 4); (height, width, 3) for BGR"),
    (npy(np.asfortranarray(frame(64, 48))), "Fortran order"),
    (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "not a readable NPY header"),
])
def test_a_raw_frame_that_does_not_fit_its_header_is_400_saying_why(hello_image: RunnerProcess, client: httpx.Client,
                                                                    body: bytes, fragment: str) -> None:
    r = client.post(f"{hello_image.url}/predict", content=body, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("body: ") and fragment in r.json()["error"]
    assert still_serving(hello_image, client)


def test_a_raw_frame_claiming_too_many_pixels_is_refused_by_its_header(hello_image: RunnerProcess,
                                                                       client: httpx.Client) -> None:
    fp = io.BytesIO()
    np.lib.format.write_array_header_1_0(fp, {"descr": "|u1", "fortran_order": False, "shape": (9000, 9000, 3)})
    header = fp.getvalue()
    r = client.post(f"{hello_image.url}/predict", content=header + b"\0" * 64,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "is 9000x9000 pixels, over the limit of 64,000,000" in r.json()["error"], r.text
    assert still_serving(hello_image, client)


def test_in_a_batch_the_bad_raw_frame_is_named(hello_image: RunnerProcess, client: httpx.Client) -> None:
    files = [("images", ("a.npy", encode_raw(frame(8, 8)), "application/octet-stream")),
             ("images", ("b.npy", npy(np.zeros((8, 8), np.int16)), "application/octet-stream"))]
    r = client.post(f"{hello_image.url}/predict", files=files)
    assert r.status_code == 400 and r.json()["error"] == "images[1]: the raw frame holds int16 values; uint8 expected"
