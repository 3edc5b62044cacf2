"""The service commands of `python -m app` (DESIGN §7) end to end, each a real subprocess over its
own `$ALGOSTAGE_HOME`: upload, deploy (waits, prints URLs), services --json, invoke, stop/start/
restart, logs, groups, remove, a deploy whose setup fails; then the same lifecycle on the docker
runtime against the real container engine (Podman's Docker API; the tests FAIL when it is missing).
Environments are shared by the session through ALGOSTAGE_ENV_DIR; ports come from a private range."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from app.history import CallFilter
from app.platform import Platform
from tests.conftest import ADMIN, ROOT, free_port, private_port_range, wait_ready
from tests.engines import (BASE_IMAGE, DEFAULT_HOST, DOCKER_HOST, connect, has_image,
                           start_engine)
from tests.support_platform import platform_env, processes_mentioning, run_cli

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
DOCKER_SERVICE = "cli-hello-docker"


@dataclass
class Cli:
    home: Path
    env: dict[str, str]

    def run(self, *args: str, ok: bool = True, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        proc = run_cli({**self.env, **env}, *args, timeout=timeout)
        if ok and proc.returncode != 0:
            raise AssertionError(f"python -m app {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def services(self) -> dict[str, dict]:
        return {s["name"]: s for s in json.loads(self.run("services", "--json").stdout)}

    def open(self) -> Platform:
        return Platform.open(self.home, self.env)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("cli") / "home"
    env = platform_env(home, free_port(), ALGOSTAGE_ENV_DIR=str(shared_envs),
                       ALGOSTAGE_PORT_RANGE=private_port_range())
    env.pop("DOCKER_HOST", None)
    yield Cli(home, env)
    run_cli(env, "down")



def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def assert_json_shape(svc: dict) -> None:
    assert {"name", "state", "version", "runtime", "replicas", "urls"} <= set(svc)
    for r in svc["replicas"]:
        assert {"name", "index", "port", "state", "pid", "container_id", "message", "log_tail"} <= set(r)
    assert svc["urls"] == [f"http://127.0.0.1:{r['port']}" for r in svc["replicas"]]


# --- supervisor runtime ----------------------------------------------------------------------------

def test_supervisor_service_lifecycle_from_the_command_line(cli: Cli) -> None:
    assert "hello version 1" in cli.run("upload", str(FIXTURES / "hello")).stdout
    deployed = cli.run("deploy", "hello")
    assert "[smoke]" in deployed.stderr
    assert deployed.stdout.startswith("hello v1 is healthy on supervisor: http://127.0.0.1:")
    url = deployed.stdout.split()[-1]

    svc = cli.services()["hello"]
    assert_json_shape(svc)
    assert (svc["state"], svc["version"], svc["runtime"], svc["urls"]) == ("RUNNING", "v1", "supervisor", [url])
    replica = svc["replicas"][0]
    assert replica["name"] == "algo-hello-1" and replica["state"] == "RUNNING" and pid_alive(replica["pid"])

    called = json.loads(cli.run("invoke", "hello", "--input", "hi", "--params", '{"threshold": 0.3}').stdout)
    assert called["service"] == "hello" and called["version"] == "v1" and called["replica"] == "algo-hello-1"
    assert called["outputs"][0]["params"]["threshold"] == 0.3 and called["outputs"][0]["label"] == "short"
    bad = cli.run("invoke", "hello", "--input", "hi", "--params", '{"threshold": 7}', ok=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error:") and "threshold" in bad.stderr
    unknown = cli.run("invoke", "hello", "--input", "hi", "--params", '{"bogus": 1}', ok=False)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "bogus" in unknown.stderr
    assert cli.run("invoke", "hello", "--input", "x", "--params", "[1]", ok=False).returncode == 1
    # Issue 11, finding 7: a binary file to a text service and a deeply nested .json are one-line
    # errors (they were a TypeError and a RecursionError traceback), and no call is recorded.
    binary = cli.home / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    deep = cli.home / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    p = cli.open()
    try:
        calls_before = len(p.history.calls(ADMIN, CallFilter()))
    finally:
        p.close()
    for path, reason in ((binary, "binary data"), (deep, "nested too deeply")):
        refused = cli.run("invoke", "hello", "--input", str(path), ok=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and reason in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    p = cli.open()
    try:
        assert len(p.history.calls(ADMIN, CallFilter())) == calls_before
    finally:
        p.close()

    assert cli.run("stop", "hello").stdout.strip() == "hello: ok"
    svc = cli.services()["hello"]
    assert (svc["state"], svc["desired_state"]) == ("STOPPED", "stopped") and not pid_alive(replica["pid"])
    down = cli.run("invoke", "hello", "--input", "hi", ok=False)
    assert down.returncode == 1 and "not reachable" in down.stderr
    cli.run("start", "hello")
    wait_ready(url)
    started_pid = cli.services()["hello"]["replicas"][0]["pid"]
    cli.run("restart", "hello")
    wait_ready(url)
    restarted = cli.services()["hello"]
    assert restarted["state"] == "RUNNING" and restarted["replicas"][0]["pid"] not in (started_pid, None)

    logs = cli.run("logs", "hello", "--lines", "20", "--stream", "stderr").stdout.splitlines()
    assert 0 < len(logs) <= 20 and any("hello is READY" in line for line in logs)
    both = cli.run("logs", "hello", "--lines", "20").stdout
    assert "==> algo-hello-1 stdout <==" in both and "==> algo-hello-1 stderr <==" in both
    assert cli.run("logs", "nope", ok=False).returncode == 1

    assert cli.run("group", "create", "g").returncode == 0
    assert cli.run("group", "assign", "hello", "g").stdout.strip() == "hello is in group g"
    assert json.loads(cli.run("group", "list", "--json").stdout) == {"g": ["hello"]}
    assert cli.run("stop", "--group", "g").stdout.strip() == "hello: ok"
    svc = cli.services()["hello"]
    assert svc["state"] == "STOPPED" and svc["group"] == "g"
    assert cli.run("stop", ok=False).returncode == 1  # no names, no group: a one-line reason
    assert cli.run("start", "--group", "nope", ok=False).returncode == 1
    cli.run("start", "--group", "g")
    wait_ready(url)

    pid = cli.services()["hello"]["replicas"][0]["pid"]
    assert cli.run("remove", "hello").stdout.strip() == "hello: ok"
    assert "hello" not in cli.services()
    assert not pid_alive(pid)
    assert processes_mentioning(str(cli.home / "releases" / "hello")) == []
    assert not (cli.home / "supervisor" / "conf.d" / "algo-hello-1.conf").exists()
    p = cli.open()
    try:
        assert p.ports.reservations() == {}
        assert p.runtimes["supervisor"].status("algo-hello-1").exists is False
    finally:
        p.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    assert cli.run("remove", "hello", ok=False).returncode == 1  # nothing left to remove


def test_a_deploy_whose_setup_fails_exits_1_with_the_reason_and_the_log(cli: Cli) -> None:
    cli.run("upload", str(FIXTURES / "crash_in_setup"))
    failed = cli.run("deploy", "crash-in-setup", ok=False)
    assert failed.returncode == 1 and failed.stdout == ""
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: deploy of crash-in-setup failed at smoke:") and "SETUP_FAILED" in last
    assert "model file missing" in last
    assert "--- last lines of the service log (smoke) ---" in failed.stderr
    assert 'raise RuntimeError("model file missing")' in failed.stderr  # the traceback from the runner
    assert "crash-in-setup" not in cli.services()
    p = cli.open()
    try:
        assert p.ports.reservations() == {}
    finally:
        p.close()
    assert not (cli.home / "supervisor" / "conf.d" / "algo-crash-in-setup-1.conf").exists()
    assert cli.run("deploy", "nope", ok=False).stderr.startswith("error: ")
    assert cli.run("deploy", "hello", "--runtime", "k8s", ok=False).returncode == 2  # usage error


# --- docker runtime --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client, error = connect()
    if client is None or not has_image(client, BASE_IMAGE):
        why = start_engine() if DOCKER_HOST == DEFAULT_HOST else ""
        client, error = connect()
        if client is None or not has_image(client, BASE_IMAGE):
            pytest.fail(f"container engine at {DOCKER_HOST} is required and not usable ({error}); {why}")
    remove_leftovers(client)
    yield client
    remove_leftovers(client)
    client.close()


def remove_leftovers(client: docker.DockerClient) -> None:
    for c in client.containers.list(all=True, filters={"name": f"algo-{DOCKER_SERVICE}-"}):
        c.remove(force=True)
    for image in client.images.list():
        for tag in image.tags:
            if f"algostage/{DOCKER_SERVICE}:" in tag:
                client.images.remove(tag, force=True)


def test_docker_service_lifecycle_from_the_command_line(cli: Cli, engine: docker.DockerClient) -> None:
    on = {"DOCKER_HOST": DOCKER_HOST, "ALGOSTAGE_DOCKER_BASE_IMAGE": BASE_IMAGE}
    cli.run("upload", str(FIXTURES / "hello"), "--name", DOCKER_SERVICE)
    deployed = cli.run("deploy", DOCKER_SERVICE, "--runtime", "docker", timeout=900, **on)
    assert deployed.stdout.startswith(f"{DOCKER_SERVICE} v1 is healthy on docker: http://127.0.0.1:")
    assert "building image" in deployed.stderr
    url = deployed.stdout.split()[-1]
    name = f"algo-{DOCKER_SERVICE}-1"
    container = engine.containers.get(name)
    assert container.status == "running" and container.labels["algostage.service"] == DOCKER_SERVICE

    svc = {s["name"]: s for s in json.loads(cli.run("services", "--json", **on).stdout)}[DOCKER_SERVICE]
    assert_json_shape(svc)
    assert (svc["state"], svc["runtime"], svc["urls"]) == ("RUNNING", "docker", [url])
    assert svc["replicas"][0]["container_id"] == container.id

    called = json.loads(cli.run("invoke", DOCKER_SERVICE, "--input", "hello there", "--params",
                                '{"threshold": 0.3, "upper": true}', **on).stdout)
    assert called["outputs"][0]["label"] == "LONG" and called["replica"] == name
    bad = cli.run("invoke", DOCKER_SERVICE, "--input", "x", "--params", '{"threshold": "high"}', ok=False, **on)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "threshold" in bad.stderr

    cli.run("stop", DOCKER_SERVICE, **on)
    assert engine.containers.get(name).status == "exited"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    cli.run("start", DOCKER_SERVICE, **on)
    wait_ready(url)
    started = engine.containers.get(name).attrs["State"]["StartedAt"]
    cli.run("restart", DOCKER_SERVICE, **on)
    wait_ready(url)
    assert engine.containers.get(name).attrs["State"]["StartedAt"] != started
    logs = cli.run("logs", DOCKER_SERVICE, "--lines", "5", "--stream", "stderr", **on).stdout.splitlines()
    assert 0 < len(logs) <= 5 and any("Uvicorn running" in line or "READY" in line for line in logs)

    cli.run("remove", DOCKER_SERVICE, **on)
    assert engine.containers.list(all=True, filters={"name": name}) == []
    assert DOCKER_SERVICE not in cli.services()
    p = cli.open()
    try:
        assert p.ports.reservations() == {}
    finally:
        p.close()
