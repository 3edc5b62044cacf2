"""Raw frames (NPY) through the invoker: as they are to a replica on this host, as JPEG to any
other host and to a replica that refused one (a runner from before raw frames), which then gets
JPEG for good. The replicas are httpx MockTransport handlers; no database (calls not recorded)."""
from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import sessionmaker

from app import media
from app.invoke import InvokeError, Invoker, Target, on_this_host, raw_as_jpeg
from app.services.routing import Route
from tests.conftest import ADMIN

FRAME = np.zeros((48, 64, 3), np.uint8)
FRAME[10:30, 20:40] = (30, 160, 250)
RAW = media.encode_raw(FRAME)
TARGET = Target("det", 1, 1, 1, "v1", "image.detection", {}, 5.0, 1, 16)


class Routes:
    def __init__(self, *urls: str) -> None:
        self.urls = urls

    def routes(self, service: str) -> list[Route]:
        return [Route(f"r{i}", url) for i, url in enumerate(self.urls)]

    def forget(self, service: str) -> None:
        pass


class Replicas:
    """Records what each host was sent; `refuse_raw` hosts answer a raw frame as an old runner does."""
    def __init__(self, refuse_raw: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.refuse_raw = refuse_raw

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append((request.url.host, request.headers["content-type"], body))
        if body.startswith(b"\x93NUMPY") and request.url.host in self.refuse_raw:
            return httpx.Response(400, json={"error": "body is not a JPEG or PNG image"})
        return httpx.Response(200, json={"outputs": [{"boxes": [], "size": len(body)}], "predict_ms": 1.0})


def invoker(replicas: Callable[[httpx.Request], httpx.Response], *urls: str) -> Invoker:
    return Invoker(sessionmaker(), None, Routes(*urls), client=httpx.Client(transport=httpx.MockTransport(replicas)))  # type: ignore[arg-type]


def call(inv: Invoker, data: bytes = RAW) -> dict:
    return inv.invoke(ADMIN, TARGET, [data], record=False).outputs[0]


@pytest.mark.parametrize("url", ["http://127.0.0.1:18001", "http://localhost:18001", "http://[::1]:18001",
                                 "http://127.0.1.1:9"])
def test_a_raw_frame_goes_as_it_is_to_a_replica_on_this_host(url: str) -> None:
    replicas = Replicas()
    call(invoker(replicas, url))
    assert replicas.sent == [(httpx.URL(url).host, "application/x-npy", RAW)]


@pytest.mark.parametrize("url", ["http://10.0.1.7:8000", "http://algo-det.1:8000", "http://192.168.3.4:18001"])
def test_a_raw_frame_goes_as_jpeg_to_another_host(url: str) -> None:
    replicas = Replicas()
    call(invoker(replicas, url))
    [(_, ctype, body)] = replicas.sent
    assert ctype == "image/jpeg" and body.startswith(b"\xff\xd8\xff")
    sent = media.decode_image(body)
    assert sent.shape == FRAME.shape and np.abs(sent.astype(int) - FRAME).mean() < 3   # the same picture


def test_a_replica_that_refuses_a_raw_frame_gets_jpeg_then_and_from_then_on() -> None:
    replicas = Replicas(refuse_raw=("127.0.0.1",))
    inv = invoker(replicas, "http://127.0.0.1:18001")
    first = call(inv)
    assert [c for _, c, _ in replicas.sent] == ["application/x-npy", "image/jpeg"] and first["size"] < len(RAW)
    call(inv)
    assert [c for _, c, _ in replicas.sent][2:] == ["image/jpeg"]   # no second try with raw


def test_a_frame_refused_as_jpeg_too_is_the_answer_and_raw_frames_still_go_raw() -> None:
    def replica(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["content-type"])
        return httpx.Response(400, json={"error": "body is 99999x99999 pixels, over the limit"})
    seen: list[str] = []
    inv = invoker(replica, "http://127.0.0.1:18001")
    with pytest.raises(InvokeError, match="answered 400: body is 99999x99999 pixels"):
        call(inv)
    with pytest.raises(InvokeError):
        call(inv)
    assert seen == ["application/x-npy", "image/jpeg"] * 2   # not a runner that refuses raw frames


def test_jpeg_and_png_inputs_are_sent_unchanged_anywhere() -> None:
    jpeg = media.encode_jpeg(FRAME)
    replicas = Replicas()
    call(invoker(replicas, "http://10.0.1.7:8000"), jpeg)
    assert replicas.sent == [("10.0.1.7", "image/jpeg", jpeg)]


def test_a_batch_of_raw_frames_to_another_host_goes_as_jpeg_parts() -> None:
    seen: list[bytes] = []

    def replica(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return httpx.Response(200, json={"outputs": [{}, {}], "predict_ms": 1.0})
    invoker(replica, "http://10.0.1.7:8000").invoke(ADMIN, TARGET, [RAW, RAW], record=False)
    assert b"\x93NUMPY" not in seen[0] and seen[0].count(b"image/jpeg") == 2


def test_a_damaged_raw_frame_for_another_host_is_a_clear_error() -> None:
    broken = RAW[:-10]
    with pytest.raises(InvokeError, match="raw frame cannot be sent as JPEG: .*bytes follow"):
        raw_as_jpeg(broken)


@pytest.mark.parametrize(("url", "local"), [("http://127.0.0.1:1", True), ("http://localhost", True),
                                             ("http://[::1]:2", True), ("http://10.0.0.1:1", False),
                                             ("http://tasks.algo-x:8000", False), ("http://[fe80::1]:1", False)])
def test_on_this_host(url: str, local: bool) -> None:
    assert on_this_host(url) is local
