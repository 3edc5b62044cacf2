"""Gateway benchmark: the same runner called directly and through the nginx gateway, in one run.

    .venv/bin/python bench/bench_gateway.py [--rounds 3] [--duration 10] [--calls 500] [--pin]

The gateway is configured as the platform configures it (orchestration/nginx.py, GatewaySpec's
defaults: its worker count, one upstream with keep-alive, API keys checked by the platform's agent
through `auth_request`, the answer cached by nginx, per-key rate limit, JSON errors, request ids,
the access log), with a real key of a real platform database and the real agent
(`python -m app agent`) answering the key check.

1. Trivial predict (tests/fixtures/algorithms/hello): wrk -t2 -c32 for `--duration` s directly
   and through the gateway, alternating, `--rounds` times → requests/s and p50 per side; the ratio
   gateway/direct per round and its median. Target: ≥ 0.90, and ≤ 1 ms added at p50. Beside it,
   the CPU each process spent per request (runner, nginx's workers), from psutil.
2. 640x480 JPEG (hello_image): one keep-alive client, `--calls` round trips each side per round,
   alternating → median round trip; the difference per round and its median. Target ≤ 1 ms.
With `--pin`, part 1 is run again with each program on a CPU of its own as far as two allow
(taskset: the runner on CPU 1, wrk and nginx on CPU 0, both sides): what the ratio is when
the gateway does not take the runner's CPU, as on any machine where it has cores of its own.
Prints markdown tables (docs/BENCHMARKS.md, "Gateway"). Exit 1 if a target is missed (unpinned).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth import Actor, Role  # noqa: E402
from app.platform import Platform  # noqa: E402
from bench.bench_runner import runner, test_frame  # noqa: E402
from orchestration.nginx import Backend, GatewayRoute, GatewaySpec, NginxGateway  # noqa: E402

ADMIN = Actor("bench", Role.ADMIN)
TARGET_RATIO, TARGET_ADDED_MS = 0.90, 1.0
WRK_SCRIPT = 'wrk.method = "POST"\nwrk.body = \'{"inputs": ["hello world"]}\'\nwrk.headers["Content-Type"] = "application/json"\n'


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def platform_with_agent() -> Iterator[tuple[Platform, str]]:
    """A platform in a temporary home with one API key, and its agent answering key checks."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        p = Platform.open(home, {"ALGOSTAGE_HOME": str(home)})
        key = p.keys.create(ADMIN, "bench").key
        env = {**os.environ, "ALGOSTAGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
        env.pop("DATABASE_URL", None)
        agent = subprocess.Popen([sys.executable, "-m", "app", "agent"], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = home / "gateway" / "agent.sock"
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            yield p, key
        finally:
            agent.terminate()
            agent.wait(10)
            p.close()


@contextmanager
def gateway_to(url: str, home: Path, cpus: str = "") -> Iterator[tuple[str, psutil.Process]]:
    """nginx with one route `bench` → the runner at `url`, keys checked by the agent of `home`;
    yields the route's base URL and nginx's master (its workers are its children)."""
    engine = NginxGateway(home / "gateway-bench")
    engine.root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host, _, upstream_port = url.removeprefix("http://").rpartition(":")
    spec = GatewaySpec("127.0.0.1", port, (GatewayRoute("bench", "bench", (Backend(host, int(upstream_port)),)),),
                       auth=f"unix:{home / 'gateway' / 'agent.sock'}", rate_per_s=100_000, burst=100_000)
    engine.apply(spec)
    proc = subprocess.Popen([*taskset(cpus), *engine.command()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/ai/bench"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield base, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def taskset(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def runner_process(url: str) -> psutil.Process:
    """The runner serving `url` (bench_runner.runner starts it as a child of this process)."""
    port = url.rsplit(":", 1)[1]
    return next(c for c in psutil.Process().children(recursive=True)
                if "orchestration.runner" in " ".join(c.cmdline()) and port in c.cmdline())


def cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of `proc` and its children (nginx's master and workers)."""
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def wrk(url: str, duration: int, key: str, cpus: str = "") -> tuple[float, float]:
    """(requests/s, p50 ms) of wrk -t2 -c32 posting the trivial predict."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        out = subprocess.run([*taskset(cpus), shutil.which("wrk") or "wrk", "-t2", "-c32", f"-d{duration}s",
                              "--latency", "-H", f"Authorization: Bearer {key}", "-s", script.name, f"{url}/predict"],
                             capture_output=True, text=True, check=True).stdout
    if re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        raise SystemExit(f"non-2xx answers:\n{out}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50[2]]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), float(p50[1]) * scale


def measured(url: str, duration: int, key: str, procs: dict[str, psutil.Process], cpus: str = "") \
        -> tuple[float, float, dict[str, float]]:
    """wrk's (requests/s, p50 ms) and each process's CPU µs per request during the run."""
    before = {name: cpu_s(p) for name, p in procs.items()}
    rps, p50 = wrk(url, duration, key, cpus)
    return rps, p50, {name: (cpu_s(p) - before[name]) / (rps * duration) * 1e6 for name, p in procs.items()}


def throughput_rounds(p: Platform, key: str, args: argparse.Namespace, pin: bool) -> list[tuple]:
    """Part 1, `--rounds` times: (load, direct rps, gateway rps, p50s, CPU µs/request)."""
    runner_cpus, client_cpus = ("1", "0") if pin else ("", "")
    rows = []
    for _ in range(args.rounds):
        load = os.getloadavg()[0]
        with runner("hello") as direct:
            rp = runner_process(direct)
            if pin:
                subprocess.run(["taskset", "-a", "-cp", runner_cpus, str(rp.pid)], capture_output=True, check=True)
            d_rps, d_p50, d_cpu = measured(direct, args.duration, key, {"runner": rp}, client_cpus)
            with gateway_to(direct, p.home, client_cpus) as (through, nginx):
                g_rps, g_p50, g_cpu = measured(through, args.duration, key, {"runner": rp, "nginx": nginx},
                                               client_cpus)
        rows.append((load, d_rps, g_rps, d_p50, g_p50, d_cpu["runner"], g_cpu["runner"], g_cpu["nginx"]))
    return rows


def jpeg_median(url: str, calls: int, key: str) -> float:
    body = cv2.imencode(".jpg", test_frame(), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    times = []
    headers = {"Content-Type": "image/jpeg", "Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=10) as client:
        for i in range(calls + 20):
            t0 = time.perf_counter()
            client.post(f"{url}/predict", content=body, headers=headers).raise_for_status()
            if i >= 20:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--pin", action="store_true", help="part 1 again with the runner on a CPU of its own")
    args = ap.parse_args()
    jpeg = []
    with platform_with_agent() as (p, key):
        plain = throughput_rounds(p, key, args, pin=False)
        for _ in range(args.rounds):
            load = os.getloadavg()[0]
            with runner("hello_image") as direct, gateway_to(direct, p.home) as (through, _):
                jpeg.append((load, jpeg_median(direct, args.calls, key), jpeg_median(through, args.calls, key)))
        pinned = throughput_rounds(p, key, args, pin=True) if args.pin else []
    workers = GatewaySpec("", 0).workers
    print(f"Gateway benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, nginx "
          f"{subprocess.run(['/usr/sbin/nginx', '-v'], capture_output=True, text=True).stderr.strip()}, "
          f"{workers} worker(s)\n")
    ratio, added_p50 = table("Trivial predict, wrk -t2 -c32", plain)
    print("\n| round (load) | JPEG direct → gateway (median) |\n|---|---|")
    for n, (load, d_jpg, g_jpg) in enumerate(jpeg, 1):
        print(f"| {n} ({load:.1f}) | {d_jpg:.2f} → {g_jpg:.2f} ms ({g_jpg - d_jpg:+.2f}) |")
    added_jpg = statistics.median(g - d for _, d, g in jpeg)
    print(f"| **median** | **{added_jpg:+.2f} ms** (≤ {TARGET_ADDED_MS:g}) |")
    if pinned:
        print()
        table("Pinned: the runner on CPU 1, wrk and nginx on CPU 0 (taskset)", pinned)
    ok = ratio >= TARGET_RATIO and added_p50 <= TARGET_ADDED_MS and added_jpg <= TARGET_ADDED_MS
    return 0 if ok else 1


def table(title: str, rows: list[tuple]) -> tuple[float, float]:
    print(f"{title}\n\n| round (load) | direct req/s | gateway req/s | ratio | p50 direct → gateway "
          "| CPU µs/request: runner direct → gateway, nginx |\n|---|---|---|---|---|---|")
    for n, (load, d_rps, g_rps, d_p50, g_p50, d_run, g_run, g_nginx) in enumerate(rows, 1):
        print(f"| {n} ({load:.1f}) | {d_rps:.0f} | {g_rps:.0f} | {g_rps / d_rps:.2f} | {d_p50:.2f} → {g_p50:.2f} ms "
              f"({g_p50 - d_p50:+.2f}) | {d_run:.0f} → {g_run:.0f}, {g_nginx:.0f} |")
    ratio = statistics.median(r[2] / r[1] for r in rows)
    added = statistics.median(r[4] - r[3] for r in rows)
    print(f"| **median** | | | **{ratio:.2f}** (≥ {TARGET_RATIO}) | **{added:+.2f} ms** (≤ {TARGET_ADDED_MS:g}) | |")
    return ratio, added


if __name__ == "__main__":
    sys.exit(main())
