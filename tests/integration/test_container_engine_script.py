"""scripts/container-engine.sh as CI calls it: inside $(…), which returns only when nothing holds
its pipe. A background service that kept the pipe (or any other caller descriptor) open made a
whole CI run hang until its time limit."""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)


def service_pids(socket: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"podman system service .*{socket}"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_command_substitution_returns_and_the_service_keeps_no_caller_descriptor(tmp_path: Path) -> None:
    socket = Path(f"/run/algostage-test-{uuid.uuid4().hex[:8]}.sock")
    env = {**os.environ, "ALGOSTAGE_PODMAN_SOCKET": str(socket), "ALGOSTAGE_PODMAN_LOG": str(tmp_path / "podman.log")}
    env.pop("DOCKER_HOST", None)
    try:
        # fd 7 stands for a CI runner's pipe: the service must not inherit it either
        marker = tmp_path / "runner-pipe"
        done = subprocess.run(["bash", "-c", f'out=$(scripts/container-engine.sh 7>{marker}); echo "$out"'],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"DOCKER_HOST=unix://{socket}"
        [pid] = service_pids(socket)
        targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert str(marker) not in targets   # (run() returning at all shows no one kept stdout/stderr open)
        assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")
        assert os.readlink(f"/proc/{pid}/fd/1") == str(tmp_path / "podman.log")
    finally:
        for pid in service_pids(socket):
            os.kill(pid, signal.SIGTERM)
        socket.unlink(missing_ok=True)
