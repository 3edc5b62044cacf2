"""What the runner's tests share: the runner as a real process on a fixture package, a fixture
factory that starts one for a test module, and the inputs and metrics they read."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, free_port

FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():
    PYTHON = Path(sys.executable)


class RunnerProcess:
    """A service process on a free port (the runner by default, or `argv` with {port} filled in);
    stderr is kept in a file so tests can read the log. Always `stop()` it (or use it in `with`)."""

    def __init__(self, package: Path, env: dict[str, str] | None = None, argv: Sequence[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.package = package
        self._log = tempfile.NamedTemporaryFile(prefix=f"runner-{package.name}-", suffix=".log", delete=False)
        cmd = [a.replace("{port}", str(self.port)) for a in argv] if argv else \
            [str(PYTHON), "-m", "orchestration.runner", "--package", str(package), "--port", str(self.port)]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{PYTHON.parent}{os.pathsep}{os.environ['PATH']}",
                    **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=package, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def wait_listening(self, timeout: float = 20) -> httpx.Response:
        """The first /health answer (whatever its status); fails if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.package.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"{self.package.name} did not listen within {timeout} s:\n{self.log()}")

    def wait_status(self, *statuses: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            body = self.wait_listening(timeout).json()
            if body["status"] in statuses:
                return body
            time.sleep(0.05)
        pytest.fail(f"{self.package.name} never reached {statuses}; last {body}:\n{self.log()}")

    def __enter__(self) -> RunnerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        os.unlink(self._log.name)


def ready_runner(package: str, **env: str) -> Callable[[], Iterator[RunnerProcess]]:
    """A module-scoped fixture: a runner on the fixture package `package` with the environment
    `env`, once READY; stopped after the module's last test. Bind it to the fixture's name:
    `hello = ready_runner("hello", ALGOSTAGE_VERSION="v3")`."""
    @pytest.fixture(scope="module")
    def runner() -> Iterator[RunnerProcess]:
        with RunnerProcess(FIXTURES / package, env=env) as process:
            process.wait_status("READY")
            yield process
    return runner


def jpeg(width: int, height: int, color: tuple[int, int, int] = (40, 80, 120)) -> bytes:
    image = np.full((height, width, 3), color, np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), color, np.uint8))[1].tobytes()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
