"""A cluster's task whose setup() fails ends (ALGOSTAGE_EXIT_ON_SETUP_FAILURE=1, set by the swarm
runtime), so the cluster sees the failure at once and rolls an update back; without the flag the
runner stays up and says SETUP_FAILED on /health (the deployer reads the reason there)."""
from __future__ import annotations

import os
import subprocess

import httpx

from orchestration.runner import SETUP_FAILED_EXIT
from tests.conftest import ROOT, free_port
from tests.runner_process import FIXTURES, PYTHON, RunnerProcess


def run(package: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), "-m", "orchestration.runner", "--package", str(FIXTURES / package),
                           "--port", str(free_port())],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                          text=True, timeout=60)


def test_with_the_flag_a_failed_setup_ends_the_process_with_its_reason() -> None:
    proc = run("crash_in_setup", ALGOSTAGE_EXIT_ON_SETUP_FAILURE="1")
    assert proc.returncode == SETUP_FAILED_EXIT == 3, proc.stderr
    assert "SETUP_FAILED: RuntimeError: model file missing" in proc.stderr


def test_with_the_flag_a_broken_manifest_ends_the_process_too() -> None:
    proc = run("bad_manifest", ALGOSTAGE_EXIT_ON_SETUP_FAILURE="1")
    assert proc.returncode == SETUP_FAILED_EXIT, proc.stderr
    assert "SETUP_FAILED: invalid algorithm.yaml" in proc.stderr


def test_without_the_flag_the_runner_stays_up_and_says_why() -> None:
    runner = RunnerProcess(FIXTURES / "crash_in_setup")
    try:
        health = runner.wait_status("SETUP_FAILED")
        assert health["status"] == "SETUP_FAILED" and "model file missing" in health["error"]
        assert runner.proc.poll() is None
        assert httpx.get(f"{runner.url}/health", timeout=5).status_code == 503
    finally:
        runner.stop()
