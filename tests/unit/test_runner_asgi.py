"""The runner's ASGI app in-process (httpx's ASGI transport, a fake loader as the seam): POST /predict
on the short path and everything else through Starlette, both over one Runner and its metrics."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from orchestration.runner.asgi import build_app, infer_path
from orchestration.runner.server import Runner

HELLO = Path(__file__).resolve().parents[1] / "fixtures" / "algorithms" / "hello"


def fake_loader(calls: list[tuple[list, dict]]):
    def load(package_dir: Path, entrypoint: str):
        def predict(inputs: list, **params) -> list:
            calls.append((inputs, params))
            if inputs == ["slow"]:
                time.sleep(0.5)
            return [{"label": text.upper(), "thread": threading.current_thread().name} for text in inputs]
        return predict
    return load


@asynccontextmanager
async def serving(calls: list) -> AsyncIterator[httpx.AsyncClient]:
    runner = Runner(HELLO, env={"ALGOSTAGE_VERSION": "v9"}, loader=fake_loader(calls))
    runner.start_setup().join()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(build_app(runner)), base_url="http://r") as c:
            yield c
    finally:
        runner.close()


def run(test: Callable[[httpx.AsyncClient, list], Awaitable[None]]) -> None:
    async def main() -> None:
        calls: list = []
        async with serving(calls) as client:
            await test(client, calls)
    asyncio.run(main())


def test_predict_on_the_short_path_runs_in_the_predict_thread() -> None:
    async def test(client: httpx.AsyncClient, calls: list) -> None:
        r = await client.post("/predict?n=7", json={"inputs": ["a", "b"]})
        assert r.status_code == 200, r.text
        assert [o["label"] for o in r.json()["outputs"]] == ["A", "B"]
        assert r.json()["outputs"][0]["thread"] == "predict"
        assert calls[-1][1]["n"] == 7 and calls[-1][1]["mode"] == "length"  # defaults filled in, query coerced
        assert (await client.get("/predict")).status_code == 405  # not the short path: Starlette answers
    run(test)


def test_v2_infer_and_native_share_validation_and_metrics() -> None:
    tensor = {"name": "input", "datatype": "BYTES", "shape": [1], "data": ["x"]}

    async def test(client: httpx.AsyncClient, calls: list) -> None:
        ok = await client.post("/v2/models/hello/versions/v9/infer", json={"inputs": [tensor],
                                                                           "parameters": {"upper": True}})
        assert ok.status_code == 200 and ok.json()["model_version"] == "v9"
        assert calls[-1] == (["x"], {"threshold": 0.5, "mode": "length", "upper": True, "note": "", "n": 5})
        bad_v2 = await client.post("/v2/models/hello/infer", json={"inputs": [tensor], "parameters": {"n": 0}})
        bad_native = await client.post("/predict", json={"inputs": ["x"], "params": {"n": 0}})
        assert bad_v2.status_code == 400 and bad_native.status_code == 422
        assert bad_v2.json()["error"] == bad_native.json()["error"] == \
            "invalid parameters: n: must be between 1 and 100, got 0"
        metrics = (await client.get("/metrics")).text
        for line in ('algostage_requests_total{endpoint="infer",status="200"} 1.0',
                     'algostage_requests_total{endpoint="infer",status="400"} 1.0',
                     'algostage_requests_total{endpoint="predict",status="422"} 1.0',
                     "algostage_inputs_total 1.0", 'algostage_predict_seconds_count{status="ok"} 1.0'):
            assert line in metrics, line
    run(test)


def test_health_busy_while_predict_runs() -> None:
    async def test(client: httpx.AsyncClient, calls: list) -> None:
        slow = asyncio.ensure_future(client.post("/predict", json={"inputs": ["slow"]}))
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        during, ready = await client.get("/health"), await client.get("/v2/health/ready")
        answered_in = time.perf_counter() - t0
        assert during.status_code == 200 and during.json()["status"] == "BUSY" and during.json()["queued"] == 0
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        assert answered_in < 0.2  # not after the 0.5 s predict
        assert (await slow).status_code == 200
        assert (await client.get("/health")).json()["status"] == "READY"
    run(test)


def test_infer_path() -> None:
    assert infer_path("/v2/models/hello/infer") == {"name": "hello"}
    assert infer_path("/v2/models/hello/versions/v3/infer") == {"name": "hello", "version": "v3"}
    for other in ("/v2/models/hello", "/v2/models//infer", "/v2/models/hello/versions//infer", "/v2/models/a/b/infer",
                  "/v1/models/hello/infer", "/v2/models/hello/infer/", "/predict"):
        assert infer_path(other) is None, other


def test_v2_short_path_refuses_other_models_and_leaves_get_to_starlette() -> None:
    async def test(client: httpx.AsyncClient, calls: list) -> None:
        r = await client.post("/v2/models/other/infer", json={"inputs": []})
        assert r.status_code == 404 and r.json() == {"error": "unknown model 'other'; this service serves 'hello'"}
        assert (await client.get("/v2/models/hello/infer")).status_code == 405
        assert calls == []
    run(test)
