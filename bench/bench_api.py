"""Management API benchmark: `GET /api/v1/services` over 100 services, and what an invoke through
the API adds to the service's own `predict_ms`.

    .venv/bin/python bench/bench_api.py [--services 100] [--reads 50] [--calls 300] [--env-dir DIR] [--in-process]

A platform in a temporary home (its own supervisord, SQLite) deploys tests/fixtures/algorithms/hello
and adds `--services` lightweight services (`python -m http.server` programs with their rows, as
bench_orchestration.py does); the API is its own program, `python -m app api` as the platform's
supervisord runs it, on a free port (`--in-process`: its app served by uvicorn in a thread of this
process, as before 2026-12-02 22:00, where the client and the server share one interpreter lock),
and one keep-alive client with an admin's key measures:
1. `GET /api/v1/services` (every service with its replicas' live state): median and p95 of
   `--reads` requests. Target ≤ 50 ms at the median.
2. `POST /api/v1/services/hello/invoke` with one text: the client's round trip minus the
   service's `predict_ms`, median of `--calls`. Target ≤ 3 ms.
Beside them, to read the numbers by: the same invoke with the standard library's `http.client` as
the client (httpx's own cost per request is a large part of a round trip here), and the floor of
this machine at that moment, a trivial FastAPI endpoint (no dependency, no database) served the
same way and called with the same httpx client.
Prints a markdown table (docs/BENCHMARKS.md, "Management API"). Exit 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from app.auth import Role  # noqa: E402
from app.platform import Platform  # noqa: E402
from app.services.deployer import DeployRequest  # noqa: E402
from bench.bench_orchestration import ADMIN, FIXTURES, add_services, free_port, platform  # noqa: E402

TARGET_LIST_MS, TARGET_INVOKE_MS = 50.0, 3.0


def serve(app: object, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


@contextmanager
def api_program(p: Platform, port: int) -> Iterator[None]:
    """`python -m app api` over the platform `p`, answering on `port`."""
    env = {**os.environ, **p.environ, "ALGOSTAGE_API_HOST": "127.0.0.1", "ALGOSTAGE_API_PORT": str(port),
           "PYTHONPATH": str(ROOT)}
    if "DATABASE_URL" not in p.environ:
        env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "app", "api"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the API program did not start") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def trivial_program(port: int) -> Iterator[None]:
    """`trivial_app` served by uvicorn in a program of its own, as the API is."""
    code = f"from bench.bench_api import trivial_app; import uvicorn; uvicorn.run(trivial_app(), host='127.0.0.1', " \
           f"port={port}, log_level='warning', access_log=False)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/trivial", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the trivial program did not start") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def trivial_app() -> FastAPI:
    app = FastAPI()

    @app.post("/trivial")
    async def trivial() -> Response:
        return Response(b'{"outputs": []}', media_type="application/json")
    return app


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--reads", type=int, default=50)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--env-dir", default="")
    ap.add_argument("--in-process", action="store_true", help="serve the API in a thread of this process")
    args = ap.parse_args()
    with platform("", args.env_dir, ports=args.services + 20) as p:
        p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
        p.deployer.deploy(ADMIN, DeployRequest("hello"))
        with tempfile.TemporaryDirectory() as work:
            add_services(p, args.services, "static", Path(work))
            p.auth.create_user(ADMIN, "bench-admin", "a-long-password", Role.ADMIN)
            key = p.keys.create(ADMIN, "bench", user="bench-admin").key
            port = free_port()
            server = serve(create_app(p), port) if args.in_process else None
            program = nullcontext() if args.in_process else api_program(p, port)
            program.__enter__()
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers, timeout=30) as c:
                listed = len(c.get("/services").json())
                reads = []
                for _ in range(args.reads):
                    t0 = time.perf_counter()
                    c.get("/services").raise_for_status()
                    reads.append((time.perf_counter() - t0) * 1000)
                added = []
                for i in range(args.calls + 20):
                    t0 = time.perf_counter()
                    reply = c.post("/services/hello/invoke", json={"inputs": [f"a text to classify {i}"]})
                    total = (time.perf_counter() - t0) * 1000
                    if i >= 20:
                        added.append(total - (reply.json()["predict_ms"] or 0))
            lean = lean_invokes(port, key, args.calls)
            floor_port = free_port()
            floor_server = serve(trivial_app(), floor_port) if args.in_process else None
            floor_program = nullcontext() if args.in_process else trivial_program(floor_port)
            floor_program.__enter__()
            with httpx.Client(base_url=f"http://127.0.0.1:{floor_port}", timeout=30) as c:
                floor = []
                for i in range(args.calls + 20):
                    t0 = time.perf_counter()
                    c.post("/trivial", json={"inputs": [f"a text to classify {i}"]}).json()
                    if i >= 20:
                        floor.append((time.perf_counter() - t0) * 1000)
            for running in (server, floor_server):
                if running is not None:
                    running.should_exit = True
            program.__exit__(None, None, None)
            floor_program.__exit__(None, None, None)
    list_ms, invoke_ms = statistics.median(reads), statistics.median(added)
    ok = list_ms <= TARGET_LIST_MS and invoke_ms <= TARGET_INVOKE_MS
    print(f"Management API benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs "
          f"(load {os.getloadavg()[0]:.1f}), SQLite, the API "
          f"{'in this process' if args.in_process else 'as its own program'}\n")
    print("| measure | result | target | met |\n|---|---|---|---|")
    print(f"| `GET /api/v1/services`, {listed} services, median of {len(reads)} | **{list_ms:.1f} ms** "
          f"(p95 {percentile(reads, 0.95):.1f}) | ≤ {TARGET_LIST_MS:g} ms | {'yes' if list_ms <= TARGET_LIST_MS else 'NO'} |")
    print(f"| `POST …/invoke` round trip − `predict_ms`, median of {len(added)} | **{invoke_ms:.2f} ms** "
          f"(p95 {percentile(added, 0.95):.2f}) | ≤ {TARGET_INVOKE_MS:g} ms | "
          f"{'yes' if invoke_ms <= TARGET_INVOKE_MS else 'NO'} |")
    print(f"| the same with http.client as the client | {statistics.median(lean):.2f} ms "
          f"(p95 {percentile(lean, 0.95):.2f}) | | |")
    print(f"| floor: a trivial FastAPI endpoint, same client and server | {statistics.median(floor):.2f} ms "
          f"(p95 {percentile(floor, 0.95):.2f}) | | |")
    return 0 if ok else 1


def lean_invokes(port: int, key: str, calls: int) -> list[float]:
    """Round trip − predict_ms of `calls` invokes through one http.client keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    added = []
    for i in range(calls + 20):
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/services/hello/invoke", json.dumps({"inputs": [f"a text {i}"]}), headers)
        reply = json.loads(conn.getresponse().read())
        total = (time.perf_counter() - t0) * 1000
        if i >= 20:
            added.append(total - (reply["predict_ms"] or 0))
    conn.close()
    return added


if __name__ == "__main__":
    sys.exit(main())
