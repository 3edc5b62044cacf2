"""Where the runner decodes an image that arrives while a predict runs (in-process ASGI app, a fake
loader whose predict can be held): a JPEG in the decode pool, so the event loop stays free; a raw
frame (a copy, no codec) on the event loop itself, which saves two thread hops per video frame;
an idle predict thread decodes its own input."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.media import encode_raw
from orchestration.runner import server
from orchestration.runner.asgi import build_app
from orchestration.runner.server import Runner
from tests.runner_process import jpeg

HELLO_IMAGE = Path(__file__).resolve().parents[1] / "fixtures" / "algorithms" / "hello_image"
RAW = encode_raw(np.full((24, 32, 3), 200, np.uint8))
JPEG = jpeg(32, 24)


def decoded_on(monkeypatch: pytest.MonkeyPatch, first: bytes, second: bytes) -> list[str]:
    """The threads that decoded `first` (sent alone) and `second` (sent while first's predict is held)."""
    threads: list[str] = []
    decode = server.decode_image
    monkeypatch.setattr(server, "decode_image", lambda blob: threads.append(threading.current_thread().name)
                        or decode(blob))
    release = threading.Event()

    def load(package_dir: Path, entrypoint: str):
        def predict(images: list, **params) -> list:
            release.wait(5)
            return [{"label": "x", "score": 1.0, "size": list(i.shape)} for i in images]
        return predict

    async def main() -> None:
        runner = Runner(HELLO_IMAGE, env={}, loader=load)
        runner.start_setup().join()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(build_app(runner)), base_url="http://r") as c:
                held = asyncio.create_task(c.post("/predict", content=first))
                while not threads:
                    await asyncio.sleep(0.01)
                queued = asyncio.create_task(c.post("/predict", content=second))
                while len(threads) < 2:
                    await asyncio.sleep(0.01)
                release.set()
                for answer in await asyncio.gather(held, queued):
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["outputs"][0]["size"] == [24, 32, 3]
        finally:
            release.set()
            runner.close()
    asyncio.run(main())
    return threads


def test_a_raw_frame_queued_behind_a_predict_is_decoded_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert decoded_on(monkeypatch, RAW, RAW) == ["predict", "MainThread"]


def test_a_jpeg_queued_behind_a_predict_is_decoded_in_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = decoded_on(monkeypatch, JPEG, JPEG)
    assert first == "predict" and second.startswith("decode")


def test_a_raw_frame_over_the_limit_goes_to_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "RAW_ON_LOOP_BYTES", len(RAW) - 1)
    first, second = decoded_on(monkeypatch, RAW, RAW)
    assert first == "predict" and second.startswith("decode")
