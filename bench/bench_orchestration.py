"""Orchestration benchmark: warm redeploy, kill -9 recovery, and the manage page's status read.

    .venv/bin/python bench/bench_orchestration.py [--redeploys 5] [--kills 5] [--services 100] [--reads 20]
                                                  [--kind runner|static] [--database-url URL] [--env-dir DIR]

All three run on a platform of their own (a temporary `$ALGOSTAGE_HOME`, its own supervisord,
SQLite unless --database-url) with the real deployer, supervisor runtime and runner:
1. **Warm redeploy**: hello v1 is deployed once (which builds its environment); then each new
   version with unchanged requirements is uploaded and `Deployer.deploy` is timed until the new
   replica is healthy and the old one retired (export → build (reused) → start → smoke → switch →
   retire). Target <= 5 s (median).
2. **kill -9 → READY**: SIGKILL the replica's process, then poll /health every 20 ms until a new
   process answers READY. Median of `--kills`; between kills the program is given time to be
   RUNNING again (supervisord counts a death during startsecs as a failed start). Target <= 3 s.
3. **Status read of N running services** (what the manage page does every 3 s):
   `ServiceManager.list(actor)` (one getAllProcessInfo call, psutil per pid) and the same plus
   `.health(views)` (GET /health of every replica). The N services are real supervisor programs
   with database rows (service, replica, port), added beside hello (so N + 1 are listed). With
   `--kind runner` (default) each runs the real runner serving hello (~60 MB and ~1.5 s of CPU
   to start, each); with `--kind static` a lightweight `python -m http.server` whose directory
   holds a file `health` = {"status": "READY"} (HTTP/1.0: one new connection per probe).
   Median and p95 of `--reads`. Target <= 300 ms.
Prints a markdown table; results are recorded in docs/BENCHMARKS.md ("Orchestration"). Exit 1 if
a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth import Actor, Role  # noqa: E402
from app.db import transaction  # noqa: E402
from app.models import Algorithm, AlgorithmService, AlgorithmVersion, ServiceReplica  # noqa: E402
from app.platform import Platform  # noqa: E402
from app.services.deployer import DeployRequest  # noqa: E402
from orchestration.runtime import ReplicaSpec, ServiceState, replica_name  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
ADMIN = Actor("bench", Role.ADMIN)
TARGET_REDEPLOY_S = 5.0
TARGET_RECOVERY_S = 3.0
TARGET_STATUS_MS = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def platform(database_url: str, env_dir: str, ports: int) -> Iterator[Platform]:
    """A platform over a temporary home with its own port range; supervisord stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="algostage-bench-"))
    low = free_port() // 1000 * 1000 % 30000 + 30000
    environ = {"ALGOSTAGE_HOME": str(home), "ALGOSTAGE_PORT_RANGE": f"{low}-{low + ports - 1}"}
    if database_url:
        environ["DATABASE_URL"] = database_url
    if env_dir:
        environ["ALGOSTAGE_ENV_DIR"] = env_dir
    p = Platform.open(home, environ)
    try:
        yield p
    finally:
        p.daemon.shutdown()
        p.close()
        shutil.rmtree(home, ignore_errors=True)


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "best": ordered[0], "worst": ordered[-1],
            "p95": ordered[max(0, round(len(ordered) * 0.95) - 1)], "n": len(ordered)}


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise SystemExit(f"not {what} within {timeout:g} s")


def ready(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(f"{url}/health", timeout=1).json().get("status") == "READY"
    except (httpx.HTTPError, ValueError):
        return False


# --- 1. warm redeploy ------------------------------------------------------------------------------

def version_of_hello(work: Path, n: int) -> Path:
    """hello with a new title (a new version) and the same requirements."""
    pkg = work / f"hello-v{n}"
    shutil.copytree(FIXTURES / "hello", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    manifest["title"] = f"Hello, version {n}"
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return pkg


def bench_redeploy(p: Platform, redeploys: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-pkgs-"))
    try:
        p.catalog.upload(ADMIN, str(FIXTURES / "hello"))
        t0 = time.perf_counter()
        first = p.deployer.deploy(ADMIN, DeployRequest("hello"))
        cold = time.perf_counter() - t0
        totals, phases = [], []
        for n in range(2, redeploys + 2):
            p.catalog.upload(ADMIN, str(version_of_hello(work, n)))
            t0 = time.perf_counter()
            result = p.deployer.deploy(ADMIN, DeployRequest("hello"))
            totals.append(time.perf_counter() - t0)
            phases.append(result.phases)
            assert not result.environment_built and result.version == n
        median_phases = {k: statistics.median(ph[k] for ph in phases) for k in phases[0]}
        return {"cold_s": cold, "cold_built": first.environment_built, "totals": stats(totals),
                "phases": median_phases}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- 2. kill -9 to READY -----------------------------------------------------------------------------

def bench_kill9(p: Platform, kills: int) -> dict:
    runtime = p.runtimes["supervisor"]
    view = p.services.get(ADMIN, "hello")
    name, url = view.replicas[0].name, view.urls[0]
    times, restarts = [], []
    with httpx.Client() as client:
        for _ in range(kills):
            wait_until(lambda: runtime.status(name).state is ServiceState.RUNNING and ready(client, url), 30,
                       "RUNNING and READY", 0.1)
            pid = runtime.status(name).pid
            os.kill(pid, signal.SIGKILL)
            t0 = time.perf_counter()
            wait_until(lambda: runtime.status(name).pid not in (None, pid), 10, "respawned", 0.005)
            restarts.append(time.perf_counter() - t0)
            wait_until(lambda: ready(client, url), 30, "READY again")
            times.append(time.perf_counter() - t0)
            time.sleep(1.2)  # past startsecs: a crash now is a crash of a RUNNING program
    return {"ready": stats(times), "respawn": stats(restarts)}


# --- 3. status read of N services -------------------------------------------------------------------

def add_services(p: Platform, count: int, kind: str, work: Path) -> list[str]:
    """`count` services of hello's latest version, each one supervisor program with its service,
    replica and port rows as a deploy would leave them. `kind` "runner": the real runner serving
    hello (from hello's environment); "static": `python -m http.server` over a directory whose
    file `health` reads {"status": "READY"}."""
    (work / "health").write_text(json.dumps({"status": "READY"}))
    runtime = p.runtimes["supervisor"]
    with p.sessions() as s:
        algo = s.scalar(select(Algorithm).where(Algorithm.name == "hello"))
        version = s.scalar(select(AlgorithmVersion).where(AlgorithmVersion.algorithm_id == algo.id)
                           .order_by(AlgorithmVersion.number.desc()))
        algo_id, version_id = algo.id, version.id
    package = p.deployer.export("hello", version)
    names = []
    for i in range(count):
        service = f"{kind}-{i:03d}"
        name = replica_name(service, 1)
        port = p.ports.reserve(name)
        server = None if kind == "runner" else f"{sys.executable} -m http.server --bind $HOST --directory {work} $PORT"
        endpoint = runtime.deploy(ReplicaSpec(service, 1, "v1", "bench", package, port, server=server),
                                  lambda line: None)
        with transaction(p.sessions) as s:
            svc = AlgorithmService(name=service, algorithm_id=algo_id, version_id=version_id, runtime="supervisor",
                                   created_by="bench")
            svc.replica_rows.append(ServiceReplica(version_id=version_id, index=1, backend_name=name, port=port,
                                                   endpoint=endpoint.url))
            s.add(svc)
        names.append(service)
    return names


def timed(fn: Callable[[], object], reads: int) -> tuple[dict[str, float], object]:
    times, result = [], None
    for _ in range(reads):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return stats(times), result


def bench_status(p: Platform, count: int, kind: str, reads: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-static-"))
    try:
        t0 = time.perf_counter()
        add_services(p, count, kind, work)
        manager = p.services
        with httpx.Client() as client:
            wait_until(lambda: all(v.state is ServiceState.RUNNING for v in manager.list(ADMIN, resources=False)),
                       600, "all RUNNING", 0.5)
            try:
                wait_until(lambda: all(ready(client, u) for v in manager.list(ADMIN, resources=False)
                                       for u in v.urls), 600, "all answering", 0.5)
            except SystemExit:
                late = [(r.name, r.port, r.state.value, p.runtimes["supervisor"].logs(r.name, 3, "stderr"))
                        for v in manager.list(ADMIN, resources=False) for r in v.replicas
                        if not ready(client, f"http://127.0.0.1:{r.port}")]
                raise SystemExit(f"{len(late)} replicas never READY: {late[:5]}") from None
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        views = manager.list(ADMIN)
        first_ms = (time.perf_counter() - t0) * 1000
        listed, views = timed(lambda: manager.list(ADMIN), reads)
        bare, _ = timed(lambda: manager.list(ADMIN, resources=False), reads)
        both, health = timed(lambda: manager.health(ADMIN, manager.list(ADMIN)), reads)
        probes, _ = timed(lambda: manager.health(ADMIN, views), reads)
        running = sum(v.state is ServiceState.RUNNING for v in views)
        memory = sum(r.memory_mb or 0 for v in views for r in v.replicas)
        ready_count = sum(h.ready for h in health.values())
        return {"services": len(views), "running": running, "ready": ready_count, "setup_s": setup_s,
                "memory_mb": memory, "first_ms": first_ms, "list": listed, "list_bare": bare, "list_health": both,
                "health": probes}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------------

def row(measure: str, result: str, target: str, met: bool) -> str:
    return f"| {measure} | {result} | {target} | {'yes' if met else 'NO'} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redeploys", type=int, default=5)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--kind", choices=["runner", "static"], default="runner",
                        help="what the N services of measure 3 run (default: the real runner)")
    parser.add_argument("--database-url", default="", help="default: SQLite under the temporary home")
    parser.add_argument("--env-dir", default="", help="ALGOSTAGE_ENV_DIR to reuse (default: built in the home)")
    args = parser.parse_args()
    with platform(args.database_url, args.env_dir, ports=args.services + 50) as p:
        redeploy = bench_redeploy(p, args.redeploys)
        kill = bench_kill9(p, args.kills)
        status = bench_status(p, args.services, args.kind, args.reads)
        db = p.engine.dialect.name
    r, k = redeploy["totals"], kill["ready"]
    lst, both = status["list"], status["list_health"]
    ok = [r["median"] <= TARGET_REDEPLOY_S, k["median"] <= TARGET_RECOVERY_S, lst["median"] <= TARGET_STATUS_MS,
          both["median"] <= TARGET_STATUS_MS]
    print(f"Orchestration benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs "
          f"(load {os.getloadavg()[0]:.1f}), Python {sys.version.split()[0]}, database {db}\n")
    print("| measure | result | target | met |")
    print("|---|---|---|---|")
    phases = ", ".join(f"{k} {v:.2f}" for k, v in redeploy["phases"].items())
    print(row(f"warm redeploy to healthy (new version, same requirements), median of {r['n']}",
              f"**{r['median']:.2f} s** (best {r['best']:.2f}, worst {r['worst']:.2f}); phases s: {phases}",
              f"<= {TARGET_REDEPLOY_S:g} s", ok[0]))
    print(row(f"kill -9 of a replica → /health READY, median of {k['n']}",
              f"**{k['median']:.2f} s** (best {k['best']:.2f}, worst {k['worst']:.2f}); respawned by "
              f"supervisord after {kill['respawn']['median'] * 1000:.0f} ms", f"<= {TARGET_RECOVERY_S:g} s", ok[1]))
    n = f"{status['services']} ({args.kind})"
    print(row(f"`ServiceManager.list(actor)`, {n} running services, median of {lst['n']}",
              f"**{lst['median']:.0f} ms** (p95 {lst['p95']:.0f}; first call {status['first_ms']:.0f}; "
              f"without psutil {status['list_bare']['median']:.0f})", f"<= {TARGET_STATUS_MS:g} ms", ok[2]))
    print(row(f"`list(actor)` + `.health(views)`, {n} services ({status['ready']} READY), median of {both['n']}",
              f"**{both['median']:.0f} ms** (p95 {both['p95']:.0f}; health alone {status['health']['median']:.0f})",
              f"<= {TARGET_STATUS_MS:g} ms", ok[3]))
    print(f"\ncold first deploy (environment {'built' if redeploy['cold_built'] else 'reused'}): "
          f"{redeploy['cold_s']:.1f} s; {n} services set up and READY in {status['setup_s']:.1f} s, "
          f"{status['memory_mb'] / 1024:.1f} GiB resident in all")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
