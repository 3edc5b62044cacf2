"""Services under a running platform (`up`: supervisord + Streamlit), DESIGN §4: services outlive
the Streamlit process, `down` stops everything, `up` starts again what the database says should
run; a replica that crashes at start reaches FATAL and its log tail is shown; an unreachable
container engine is a clear message while the supervisor runtime keeps working."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from app.platform import Platform
from orchestration.processes import start_time
from orchestration.runtime import ServiceState
from orchestration.supervisord import SupervisorDaemon
from tests.conftest import ADMIN, ROOT, free_port, private_port_range, wait_ready
from tests.support_platform import RunningPlatform, processes_mentioning, run_cli, start_platform, stop_platform

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"

START_OR_CRASH = '''\
"""Serve with the runner, unless the file named by $CRASH_FLAG exists: then fail at start."""
import os
import sys

flag = os.environ.get("CRASH_FLAG", "")
if flag and os.path.exists(flag):
    sys.exit("cannot load model.bin: the file is corrupt")
os.execv(sys.executable, [sys.executable, "-m", "orchestration.runner", "--package", ".", "--port", sys.argv[1]])
'''


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[RunningPlatform]:
    p = start_platform(tmp_path_factory.mktemp("platform") / "home", free_port(),
                       ALGOSTAGE_ENV_DIR=str(shared_envs),
                       ALGOSTAGE_PORT_RANGE=private_port_range())
    yield p
    stop_platform(p)


def cli(p: RunningPlatform, *args: str, ok: bool = True, **env: str):  # noqa: ANN201 - CompletedProcess
    proc = run_cli({**p.env, **env}, *args, timeout=300)
    if ok and proc.returncode != 0:
        raise AssertionError(f"python -m app {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def services(p: RunningPlatform) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(cli(p, "services", "--json").stdout)}



def predict(url: str, text: str) -> dict:
    reply = httpx.post(f"{url}/predict", json={"inputs": [text]}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()["outputs"][0]


def ui_pid(home: Path) -> int:
    return SupervisorDaemon(home).rpc().supervisor.getProcessInfo("algostage-ui")["pid"]


def ui_healthy(p: RunningPlatform) -> bool:
    try:
        return httpx.get(f"{p.url}/_stcore/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check, timeout: float, what: str) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout:g} s")


def crashable_package(tmp_path: Path, name: str, server: str = "python start.py $PORT") -> Path:
    pkg = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIXTURES / "hello", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "start.py").write_text(START_OR_CRASH)
    manifest = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    manifest.update(name=name, server=server)
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return pkg


def test_services_outlive_the_ui_and_come_back_after_down_and_up(running: RunningPlatform) -> None:
    cli(running, "upload", str(FIXTURES / "hello"))
    url = cli(running, "deploy", "hello").stdout.split()[-1]
    assert predict(url, "hi")["label"] == "short"
    service_pid = services(running)["hello"]["replicas"][0]["pid"]

    streamlit = ui_pid(running.home)
    os.kill(streamlit, signal.SIGKILL)
    for text in ("while the UI is down", "and again"):
        assert predict(url, text)["label"] == "long"
    assert services(running)["hello"]["replicas"][0]["pid"] == service_pid  # untouched
    wait_until(lambda: ui_pid(running.home) not in (0, streamlit), 30, "restarted by supervisord")
    wait_until(lambda: ui_healthy(running), 60, "UI back")

    supervisord = SupervisorDaemon(running.home).pid()
    assert "stopped" in cli(running, "down").stdout
    assert processes_mentioning(str(running.home), f"--server.port={running.port}") == []
    assert supervisord and start_time(supervisord) is None   # gone (or a zombie no init has reaped yet)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    down = services(running)["hello"]  # the database still says it should run
    assert down["desired_state"] == "running" and down["state"] == "STOPPED"

    again = cli(running, "up")
    assert "started again (should run): algo-hello-1" in again.stdout
    assert "could not reconcile" not in again.stdout  # no service uses docker: its absence is no failure
    wait_ready(url)
    assert predict(url, "back again")["label"] == "long"
    svc = services(running)["hello"]
    assert svc["state"] == "RUNNING" and svc["urls"] == [url] and svc["replicas"][0]["pid"] != service_pid


def test_a_replica_that_crashes_at_start_reaches_fatal_with_its_log_tail(running: RunningPlatform,
                                                                         tmp_path: Path) -> None:
    flag = tmp_path / "crash-now"
    cli(running, "upload", str(crashable_package(tmp_path, "crashy")))
    url = cli(running, "deploy", "crashy", "--env", f"CRASH_FLAG={flag}").stdout.split()[-1]
    assert predict(url, "fine indeed")["label"] == "long"

    # a version that dies at start: the deploy fails at smoke and v1 keeps serving
    dies = "python -c \"import sys; sys.exit('boom: weights missing on port ' + sys.argv[1])\" $PORT"
    cli(running, "upload", str(crashable_package(tmp_path, "crashy", dies)))
    failed = cli(running, "deploy", "crashy", ok=False)
    assert failed.returncode == 1 and "failed at smoke" in failed.stderr.splitlines()[-1]
    assert "FATAL" in failed.stderr.splitlines()[-1] and "boom: weights missing on port" in failed.stderr
    assert predict(url, "still v1")["label"] == "long"
    svc = services(running)["crashy"]
    assert svc["version"] == "v1" and svc["state"] == "RUNNING" and "failed at smoke" in svc["last_error"]

    # v1 crashes at its next start: supervisord retries, then gives up (FATAL)
    flag.write_text("corrupt")
    os.kill(svc["replicas"][0]["pid"], signal.SIGKILL)
    wait_until(lambda: services(running)["crashy"]["state"] == "FATAL", 60, "FATAL")
    replica = services(running)["crashy"]["replicas"][0]
    assert replica["state"] == "FATAL" and replica["message"]
    assert "cannot load model.bin: the file is corrupt" in replica["log_tail"]

    p = Platform.open(running.home, running.env)
    try:
        view = next(v for v in p.services.list(ADMIN) if v.name == "crashy")
        assert view.state is ServiceState.FATAL
        assert "cannot load model.bin" in view.replicas[0].log_tail
        assert p.services.health(ADMIN, [view]) == {}  # a FATAL replica is not probed
        # starting it again says it did not come up (after supervisord's retries), not "ok"
        outcome = p.services.start(ADMIN, ["crashy"])["crashy"]
        assert outcome == "algo-crashy-1 is FATAL (see its log)", outcome
        flag.unlink()
        assert p.services.start(ADMIN, ["crashy"]) == {"crashy": None}
        assert next(v for v in p.services.list(ADMIN) if v.name == "crashy").state is ServiceState.RUNNING
        wait_ready(url)
        assert next(v for v in p.services.list(ADMIN) if v.name == "crashy").replicas[0].log_tail == ""
    finally:
        p.close()
    cli(running, "remove", "crashy")


def test_an_unreachable_container_engine_is_a_clear_message_and_supervisor_keeps_working(
        running: RunningPlatform) -> None:
    if "hello" not in services(running):
        cli(running, "upload", str(FIXTURES / "hello"))
        cli(running, "deploy", "hello")
    url = services(running)["hello"]["urls"][0]
    t0 = time.monotonic()
    failed = cli(running, "deploy", "hello", "--runtime", "docker", ok=False, DOCKER_HOST="unix:///nonexistent.sock")
    assert time.monotonic() - t0 < 30
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 1
    # the image is built in the build phase, where the engine is first needed
    assert last.startswith("error: deploy of hello failed at build: container engine at unix:///nonexistent.sock "
                           "is not reachable"), failed.stderr
    assert "Traceback" not in failed.stderr

    assert predict(url, "supervisor still serves")["label"] == "long"
    svc = services(running)["hello"]
    assert svc["runtime"] == "supervisor" and svc["state"] == "RUNNING" and svc["urls"] == [url]
    redeployed = cli(running, "deploy", "hello", DOCKER_HOST="unix:///nonexistent.sock")
    assert "healthy on supervisor" in redeployed.stdout
    wait_ready(redeployed.stdout.split()[-1])
    listed = cli(running, "services", DOCKER_HOST="unix:///nonexistent.sock")
    assert listed.returncode == 0 and "RUNNING" in listed.stdout
