"""The supervisor runtime against a real supervisord: the Runtime contract, kill -9, crash to FATAL."""
import os
import signal
import sys
import time

import httpx
import pytest

from orchestration.errors import NotFound
from orchestration.builder import EnvironmentBuilder
from orchestration.runtime import ReplicaSpec, ServiceState
from orchestration.supervisor import SupervisorRuntime, tail
from orchestration.supervisord import SupervisorDaemon
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def runtime(tmp_path, shared_envs):
    daemon = SupervisorDaemon(tmp_path / "home")
    rt = SupervisorRuntime(daemon, EnvironmentBuilder(shared_envs))
    yield rt
    daemon.shutdown()


def http_spec(tmp_path, port, index=1, **kw) -> ReplicaSpec:
    return ReplicaSpec("web", index, "v1", "abc", tmp_path, port,
                       server=f"{sys.executable} -m http.server --bind $HOST $PORT", **kw)


def wait_state(rt, name, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = rt.status(name)
        if st.state == state:
            return st
        time.sleep(0.1)
    raise AssertionError(f"{name} is {rt.status(name)}, wanted {state}")


def wait_http(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answers on {port}")


def test_missing_replica_reads_as_stopped_and_stop_remove_are_idempotent(runtime):
    st = runtime.status("algo-nope-1")
    assert (st.state, st.exists) == (ServiceState.STOPPED, False)  # daemon not even running
    runtime.daemon.start()
    st = runtime.status("algo-nope-1")
    assert (st.state, st.exists) == (ServiceState.STOPPED, False)
    runtime.stop("algo-nope-1")
    runtime.remove("algo-nope-1")
    with pytest.raises(NotFound):
        runtime.start("algo-nope-1")
    with pytest.raises(NotFound):
        runtime.restart("algo-nope-1")


def test_deploy_stop_start_restart_remove(runtime, tmp_path):
    port = free_port()
    spec = http_spec(tmp_path, port, env={"GREETING": 'say "hi" 100%'})
    lines = []
    runtime.deploy(spec, lines.append)
    assert "algo-web-1" in lines[-1]
    st = wait_state(runtime, "algo-web-1", ServiceState.RUNNING)
    assert st.pid and st.started_at
    assert wait_http(port).status_code == 200
    assert "algo-web-1" in [s.name for s in runtime.list()]
    assert "GET /" in runtime.logs("algo-web-1", 10, "stderr")

    runtime.stop("algo-web-1")
    runtime.stop("algo-web-1")
    assert runtime.status("algo-web-1").state is ServiceState.STOPPED
    assert runtime.status("algo-web-1").exists
    runtime.start("algo-web-1")
    first = wait_state(runtime, "algo-web-1", ServiceState.RUNNING).pid
    runtime.restart("algo-web-1")
    assert wait_state(runtime, "algo-web-1", ServiceState.RUNNING).pid != first

    pid = runtime.status("algo-web-1").pid
    runtime.remove("algo-web-1")
    runtime.remove("algo-web-1")
    assert runtime.status("algo-web-1").exists is False
    assert not runtime.daemon.program_file("algo-web-1").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_kill_minus_nine_is_restarted_by_supervisord(runtime, tmp_path):
    port = free_port()
    runtime.deploy(http_spec(tmp_path, port), lambda line: None)
    pid = wait_state(runtime, "algo-web-1", ServiceState.RUNNING).pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = runtime.status("algo-web-1")
        if st.state is ServiceState.RUNNING and st.pid != pid:
            break
        time.sleep(0.1)
    assert st.pid != pid and st.state is ServiceState.RUNNING
    assert wait_http(port).status_code == 200


def test_a_program_that_crashes_at_start_reaches_fatal_with_its_log(runtime, tmp_path):
    spec = ReplicaSpec("crash", 1, "v1", "abc", tmp_path, free_port(),
                       server=f"{sys.executable} -c \"import sys; print('boom: no model', file=sys.stderr); sys.exit(3)\"")
    runtime.deploy(spec, lambda line: None)
    st = wait_state(runtime, "algo-crash-1", ServiceState.FATAL, timeout=60)
    assert "boom: no model" in runtime.logs("algo-crash-1", 5, "stderr")
    assert st.exists


def test_tail_reads_the_last_lines(tmp_path):
    f = tmp_path / "log"
    f.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail(f, 3) == "line 99997\nline 99998\nline 99999"
    assert tail(tmp_path / "missing", 3) == ""
