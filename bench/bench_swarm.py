"""Swarm benchmark (issue 13): the same algorithm through the gateway on the swarm runtime and on
the supervisor runtime, and the swarm's deploy and scale-up times, in one run.

    .venv/bin/python bench/bench_swarm.py [--rounds 3] [--duration 10] [--replicas 4]

A platform started by `up` (its supervisord, the agent, nginx as the gateway) in a temporary
home; the cluster is the two-node swarm of tests/cluster/nodes.py (two Docker Engines in network
namespaces of their own on this machine, a manager and a worker; needs root and what
scripts/docker-engine.sh --swarm sets up: the host's engine builds, its registry serves images).

1. Cold deploy: `deploy NAME --runtime swarm --replicas N` of a version never built before
   (image built on the host's engine, pushed, pulled by both nodes, N tasks healthy and routed).
2. Warm deploy: the same again for a second name with the same code (image in the registry).
3. Scale-up: `scale NAME N+2` until the new tasks are healthy and routed.
4. Requests/s through the gateway (wrk -t2 -c32, trivial predict of tests/fixtures/algorithms/hello):
   the N-replica swarm service against the same N replicas on the supervisor runtime,
   alternating, `--rounds` times; the ratio per round and its median.

Both sides run on the same 2 cores as the load generator and nginx: the swarm's replicas in
containers behind a bridge and a veth pair each, the supervisor's as local processes on loopback.
Prints markdown (docs/BENCHMARKS.md, "Swarm").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import wrk
from tests.cluster.nodes import TwoNodeSwarm
from tests.support_platform import RunningPlatform, start_platform, stop_platform

HELLO = ROOT / "tests" / "fixtures" / "algorithms" / "hello"
DOCKERD_HOST = os.environ.get("ALGOSTAGE_TEST_DOCKERD_HOST", "unix:///run/algostage-docker.sock")
REGISTRY = os.environ.get("ALGOSTAGE_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("ALGOSTAGE_DOCKER_BASE_IMAGE", "algostage/base:bookworm")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upload(p: RunningPlatform, tmp: Path, name: str, stamp: str) -> None:
    """`name`, the hello fixture with a title of its own (a new version, so a new image)."""
    package = tmp / name
    shutil.copytree(HELLO, package)
    manifest = yaml.safe_load((package / "algorithm.yaml").read_text())
    (package / "algorithm.yaml").write_text(yaml.safe_dump({**manifest, "name": name, "title": f"Hello {stamp}"}))
    p.cli("upload", str(package), check=True)


def service(p: RunningPlatform, name: str) -> dict:
    return next(s for s in json.loads(p.cli("services", "--json", check=True).stdout) if s["name"] == name)


def routed(p: RunningPlatform, name: str, replicas: int, timeout: float = 120) -> float:
    """Seconds until `replicas` replicas of `name` are in the gateway's rotation."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if sum(r["routed"] and r["state"] == "RUNNING" for r in service(p, name)["replicas"]) >= replicas:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"{name}: {replicas} replicas not routed within {timeout:g} s")


def timed_deploy(p: RunningPlatform, name: str, *args: str) -> float:
    t0 = time.monotonic()
    p.cli("deploy", name, *args, check=True, timeout=900)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=4)
    args = ap.parse_args()
    n = args.replicas
    stamp = time.strftime("%Y%m%d%H%M%S")
    cluster = TwoNodeSwarm()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        cluster.up()
        p = start_platform(tmp / "home", free_port(), ALGOSTAGE_PORT_RANGE="41000-41099",
                           ALGOSTAGE_ENV_DIR=str(tmp / "envs"), DOCKER_HOST=DOCKERD_HOST,
                           ALGOSTAGE_SWARM_HOST=cluster.manager.docker_host, ALGOSTAGE_SWARM_REGISTRY=REGISTRY,
                           ALGOSTAGE_DOCKER_BASE_IMAGE=BASE_IMAGE, ALGOSTAGE_SWARM_NETWORK="algostage-bench",
                           ALGOSTAGE_GATEWAY_RATE="0")   # no per-key rate limit: wrk's one key is the whole load
        try:
            key = json.loads(p.cli("key", "create", "bench", "--json", check=True).stdout)["key"]
            upload(p, tmp, "bench-swarm", stamp)
            cold = timed_deploy(p, "bench-swarm", "--runtime", "swarm", "--replicas", str(n))
            cold += routed(p, "bench-swarm", n)
            upload(p, tmp / "warm", "bench-swarm-warm", stamp)
            warm = timed_deploy(p, "bench-swarm-warm", "--runtime", "swarm", "--replicas", str(n))
            warm += routed(p, "bench-swarm-warm", n)
            p.cli("remove", "bench-swarm-warm", check=True, timeout=300)
            t0 = time.monotonic()
            p.cli("scale", "bench-swarm", str(n + 2), check=True, timeout=600)
            scale_up = time.monotonic() - t0 + routed(p, "bench-swarm", n + 2)
            print(f"cold deploy {cold:.1f} s, warm deploy {warm:.1f} s, scale-up {scale_up:.1f} s", file=sys.stderr)
            p.cli("scale", "bench-swarm", str(n), check=True, timeout=600)
            upload(p, tmp / "local", "bench-local", stamp)
            timed_deploy(p, "bench-local", "--replicas", str(n))
            routed(p, "bench-local", n)
            placed = sorted({r["endpoint"].removeprefix("http://").split(":")[0]
                             for r in service(p, "bench-swarm")["replicas"]})
            gateway = f"http://127.0.0.1:{p.env['ALGOSTAGE_GATEWAY_PORT']}/ai"
            rows = []
            for r in range(args.rounds):
                load = os.getloadavg()[0]
                order = ("bench-swarm", "bench-local") if r % 2 == 0 else ("bench-local", "bench-swarm")
                got = {name: wrk(f"{gateway}/{name}", args.duration, key) for name in order}
                rows.append((r + 1, load, got["bench-local"], got["bench-swarm"]))
        finally:
            for name in ("bench-swarm", "bench-swarm-warm", "bench-local"):
                p.cli("remove", name, timeout=300)
            stop_platform(p)
            cluster.down()
    print(f"Swarm benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, two nodes "
          f"(tasks on {', '.join(placed)}), {n} replicas\n")
    print("| measure | result |\n|---|---|")
    print(f"| cold deploy of {n} replicas (build, push, pull on both nodes, healthy, routed) | {cold:.1f} s |")
    print(f"| warm deploy of {n} replicas (image in the registry) | {warm:.1f} s |")
    print(f"| scale-up {n} → {n + 2} (new tasks healthy and routed) | {scale_up:.1f} s |\n")
    print("| round (load) | supervisor req/s (p50) | swarm req/s (p50) | ratio swarm/supervisor |")
    print("|---|---|---|---|")
    for i, load, (l_rps, l_p50), (s_rps, s_p50) in rows:
        print(f"| {i} ({load:.1f}) | {l_rps:.0f} ({l_p50:.2f} ms) | {s_rps:.0f} ({s_p50:.2f} ms) | {s_rps / l_rps:.2f} |")
    print(f"| **median** | | | **{statistics.median(s[0] / loc[0] for _, _, loc, s in rows):.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
