"""`up`, `status`, `down` and the command line against a real supervisord and Streamlit."""
import json
import os
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.support_platform import processes_mentioning, run_cli, platform_env, start_platform, stop_platform


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    p = start_platform(tmp_path_factory.mktemp("plat") / "home", free_port())
    yield p
    stop_platform(p)


@pytest.mark.timeout(300)
def test_up_serves_the_login_page_and_prints_url_and_admin(running):
    assert running.url in running.up_output
    assert "admin login: admin" in running.up_output
    assert "admin-password" not in running.up_output  # a password from the environment is not echoed
    assert httpx.get(f"{running.url}/_stcore/health", timeout=10).text == "ok"
    st = json.loads(running.cli("status", "--json", check=True).stdout)
    assert st["supervisord"] == "RUNNING" and st["ui"] == "RUNNING"
    assert st["schema_revision"] == st["schema_head"] and st["database"] == "sqlite"
    assert st["counts"]["users"] == 1


@pytest.mark.timeout(300)
def test_up_is_idempotent(running):
    again = running.cli("up", check=True)
    assert running.url in again.stdout and "as created on the first" in again.stdout
    assert len(processes_mentioning(f"--server.port={running.port}")) == 1


@pytest.mark.timeout(300)
def test_command_line_exit_codes_and_json(running):
    bad = running.cli("config", "set", "ALGOSTAGE_PORT_RANGE", "9-1")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "ALGOSTAGE_PORT_RANGE" in bad.stderr
    assert running.cli("frobnicate").returncode == 2
    assert running.cli("user", "add", "carol", "--role", "operator", "--password", "carol-password").returncode == 0
    dup = running.cli("user", "add", "carol", "--password", "carol-password")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    users = json.loads(running.cli("user", "list", "--json", check=True).stdout)
    assert [(u["username"], u["role"]) for u in users] == [("admin", "admin"), ("carol", "operator")]
    running.cli("config", "set", "ALGOSTAGE_LOG_BACKUPS", "7", check=True)
    rows = {r["key"]: r for r in json.loads(running.cli("config", "list", "--json", check=True).stdout)}
    assert rows["ALGOSTAGE_LOG_BACKUPS"] == {"key": "ALGOSTAGE_LOG_BACKUPS", "value": "7", "source": "database",
                                            "error": ""}
    hist = json.loads(running.cli("config", "history", "ALGOSTAGE_LOG_BACKUPS", "--json", check=True).stdout)
    assert hist[0]["actor"].startswith("cli:") and hist[0]["new"] == "7"


@pytest.mark.timeout(300)
def test_two_platforms_side_by_side_and_down_leaves_nothing(running, tmp_path):
    other = start_platform(tmp_path / "other-home", free_port())
    try:
        for p in (running, other):
            assert httpx.get(f"{p.url}/_stcore/health", timeout=10).status_code == 200
    finally:
        stop_platform(other)
    assert processes_mentioning(str(other.home), f"--server.port={other.port}") == []
    assert httpx.get(f"{running.url}/_stcore/health", timeout=10).status_code == 200  # untouched


@pytest.mark.timeout(300)
def test_down_then_up_again(tmp_path):
    home, port = tmp_path / "home", free_port()
    p = start_platform(home, port)
    down = run_cli(p.env, "down", check=True)
    assert "stopped" in down.stdout
    deadline = time.monotonic() + 10
    while processes_mentioning(str(home), f"--server.port={port}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(home), f"--server.port={port}") == []
    assert "not running" in run_cli(p.env, "down", check=True).stdout  # idempotent
    p = start_platform(home, port)
    assert httpx.get(f"{p.url}/_stcore/health", timeout=10).status_code == 200
    stop_platform(p)


@pytest.mark.timeout(120)
def test_up_refuses_a_port_taken_by_another_process(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        env = platform_env(tmp_path / "home", port)
        proc = run_cli(env, "up")
        assert proc.returncode == 1 and f"port {port} is already in use" in proc.stderr
        assert f"(pid {os.getpid()}: " in proc.stderr   # who holds it; not ours, so not ended
        run_cli(env, "down")
