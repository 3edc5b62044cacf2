"""scripts/docker-engine.sh --swarm as CI calls it: inside $(…), idempotent, DOCKER_HOST=… last, and
what it started in the background (dockerd, the registry) holds none of the caller's descriptors —
a background process keeping CI's pipe made a whole run hang until its time limit."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import ROOT
from tests.engines import DEFAULT_DOCKERD_HOST, REGISTRY

pytestmark = pytest.mark.timeout(600)
SOCKET = DEFAULT_DOCKERD_HOST.removeprefix("unix://")


def pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def descriptors(pid: int) -> set[str]:
    return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


@pytest.mark.parametrize("run", [1, 2])
def test_it_sets_up_a_swarm_manager_with_a_registry_and_returns_inside_command_substitution(
        run: int, tmp_path: Path, docker_engine: docker.DockerClient) -> None:
    marker = tmp_path / "runner-pipe"   # fd 7 stands for a CI runner's pipe
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    done = subprocess.run(["bash", "-c", f'out=$(scripts/docker-engine.sh --swarm 7>{marker}); echo "$out"'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"DOCKER_HOST={DEFAULT_DOCKERD_HOST}"
    assert "swarm manager active" in done.stderr and "registry answers" in done.stderr  # nothing started twice
    info = docker_engine.info()
    assert info["Swarm"]["LocalNodeState"] == "active" and info["Swarm"]["ControlAvailable"] is True
    assert httpx.get(f"http://{REGISTRY}/v2/", timeout=5).status_code == 200
    [dockerd] = pids_of(f"dockerd --host unix://{SOCKET}")
    [registry] = pids_of("docker-registry serve")
    # (run() returning at all shows no one kept its stdout or stderr open)
    for pid, log in ((dockerd, "algostage-docker.log"), (registry, "algostage-registry.log")):
        assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")
        assert str(marker) not in descriptors(pid)
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{pid}/fd/1").endswith(log) and os.readlink(f"/proc/{pid}/fd/2").endswith(log)
