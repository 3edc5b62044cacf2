"""The deploy and manage pages driven through AppTest over a real platform: real supervisord, the
real runner, environments shared by the session (ALGOSTAGE_ENV_DIR), a private port range."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.auth import Actor, Role
from app.platform import Platform
from app.services.deployer import DeployRequest
from orchestration.errors import DeployError
from orchestration.runtime import ServiceState
from tests.conftest import ROOT, empty_tables, private_port_range, wait_ready
from tests.integration.test_deploy import package_as
from tests.integration.test_platform_services import crashable_package

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
OPERATOR = Actor("op", Role.OPERATOR)
ADMIN = Actor("boss", Role.ADMIN)


@pytest.fixture
def env(migrated_db_url: str, tmp_path: Path, shared_envs: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """A platform whose settings the pages see too (through the process environment)."""
    environ = {"ALGOSTAGE_HOME": str(tmp_path / "home"), "DATABASE_URL": migrated_db_url,
               "ALGOSTAGE_ENV_DIR": str(shared_envs), "ALGOSTAGE_PORT_RANGE": private_port_range()}
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    p = Platform.open(Path(environ["ALGOSTAGE_HOME"]), environ, migrate=False)
    empty_tables(p.engine)
    yield p
    p.daemon.shutdown()
    p.close()


def page(name: str, actor: Actor = OPERATOR) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=300)
    at.session_state["actor"] = actor
    at.session_state["lang"] = "en"
    return at


def by_label(widgets, label: str):  # noqa: ANN001, ANN201 - AppTest widget lists
    return next(w for w in widgets if w.label == label)



# --- deploy page -----------------------------------------------------------------------------------

def test_deploy_page_offers_algorithms_versions_runtimes_and_deploys(env: Platform, tmp_path: Path) -> None:
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    env.catalog.upload(ADMIN, str(crashable_package(tmp_path, "hello")))  # v2 of hello
    env.catalog.upload(ADMIN, str(FIXTURES / "crash_in_setup"))
    at = page("deploy.py").run()
    assert not at.exception and not at.error
    algorithm = at.selectbox[0]
    assert algorithm.options == ["crash-in-setup — Crash in setup (fixture)", "hello — Hello (fixture)"]
    algorithm.set_value("hello").run()
    assert at.selectbox[1].options == ["v2", "v1"] and at.selectbox[1].value == 2
    assert at.radio[0].options == ["supervisor", "docker", "swarm"] and at.radio[0].value == "supervisor"
    assert by_label(at.number_input, "Replicas").value == 1
    assert by_label(at.number_input, "Memory per replica (MiB)").value == 256  # the manifest's 256m

    at.selectbox[1].set_value(1)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.status[0].state == "complete" and at.status[0].label == "hello v1 is healthy"
    shown = at.success[0].value
    assert shown.startswith("Serving at http://127.0.0.1:")
    url = shown.split()[-1]
    wait_ready(url)
    assert httpx.get(f"{url}/info", timeout=5).json()["version"] == "v1"
    assert {"build", "start", "smoke"} <= set(at.dataframe[-1].value.columns)
    view = env.services.get(OPERATOR, "hello")
    assert view.version == "v1" and view.urls == [url] and view.runtime == "supervisor"


def test_deploy_page_shows_the_failed_phase_and_the_service_log(env: Platform) -> None:
    env.catalog.upload(ADMIN, str(FIXTURES / "crash_in_setup"))
    at = page("deploy.py").run()
    at.button[0].click().run()
    assert not at.exception
    assert at.status[0].state == "error" and "failed at smoke" in at.status[0].label
    assert len(at.error) == 1 and "SETUP_FAILED" in at.error[0].value and "model file missing" in at.error[0].value
    logs = " ".join(c.value for c in at.expander[-1].code)
    assert 'raise RuntimeError("model file missing")' in logs  # the runner's traceback
    assert not at.success
    assert env.services.list(OPERATOR) == [] and env.ports.reservations() == {}


def test_deploy_page_with_an_unreachable_container_engine_says_so(env: Platform,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    at = page("deploy.py").run()
    at.radio[0].set_value("docker").run()
    at.button[0].click().run()
    assert not at.exception
    # the image is built in the build phase (before any replica starts), where the engine is first needed
    assert at.status[0].state == "error" and "failed at build" in at.status[0].label
    assert len(at.error) == 1
    assert at.error[0].value.startswith("container engine at unix:///nonexistent.sock is not reachable")
    assert env.services.list(OPERATOR) == [] and env.ports.reservations() == {}

    at.radio[0].set_value("supervisor").run()  # the supervisor runtime keeps working
    at.button[0].click().run()
    assert at.status[0].state == "complete" and at.success[0].value.startswith("Serving at ")


# --- manage page -----------------------------------------------------------------------------------

def table_row(at: AppTest, name: str) -> dict:
    table = at.dataframe[0].value
    rows = table[table["Service"] == name].to_dict("records")
    assert rows, table
    return rows[0]


def test_manage_page_status_actions_logs_history_and_ports(env: Platform) -> None:
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    result = env.deployer.deploy(OPERATOR, DeployRequest("hello"))
    port = int(result.urls[0].rsplit(":", 1)[1])
    at = page("manage.py").run()
    assert not at.exception and not at.error
    row = table_row(at, "hello")
    assert row["State"] == "🟢 RUNNING" and row["Health"] == "1/1 READY" and row["Version"] == "v1"
    assert row["Ports"] == str(port) and row["Replicas"] == "1/1" and row["Runtime"] == "supervisor"
    assert int(row["PID / container"]) == env.services.get(OPERATOR, "hello").replicas[0].pid

    at.multiselect[0].select("hello").run()
    at.button(key="bulk-stop").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Stop: hello"]
    assert env.services.get(OPERATOR, "hello").state is ServiceState.STOPPED
    at.run()
    assert table_row(at, "hello")["State"] == "⚪ STOPPED" and table_row(at, "hello")["Health"] == ""
    at.button(key="bulk-start").click().run()
    assert [s.value for s in at.success] == ["Start: hello"]
    wait_ready(result.urls[0])
    at.run()
    assert table_row(at, "hello")["State"] == "🟢 RUNNING"

    logs_tab, _, history_tab, _, ports_tab = at.tabs   # logs, routing, history, settings, ports
    log_text = "\n".join(c.value for c in logs_tab.code)
    assert "hello is READY" in log_text and "Shutting down" in log_text  # stderr: started, stopped, started
    history = history_tab.dataframe[0].value.to_dict("records")
    assert [(h["State"], h["Runtime"], h["Replicas"], h["By"]) for h in history] == \
        [("succeeded", "supervisor", 1, "op")]
    assert "smoke" in history[0]["Phases"]
    ports = ports_tab.dataframe[0].value.to_dict("records")
    assert ports == [{"Port": port, "Replica": "algo-hello-1"}]


def test_a_failed_deploys_error_is_said_in_the_pages_language(env: Platform, tmp_path: Path) -> None:
    """The error is kept as the message it was: the Chinese page says it in Chinese (the replica's
    name, its state and the runner's own words stay as they are); the English page as raised."""
    env.catalog.upload(ADMIN, str(package_as(tmp_path, "hello", "flaky")))
    env.deployer.deploy(OPERATOR, DeployRequest("flaky"))
    env.catalog.upload(ADMIN, str(package_as(tmp_path, "crash_in_setup", "flaky", task="text.classification")))
    with pytest.raises(DeployError):
        env.deployer.deploy(OPERATOR, DeployRequest("flaky", health_timeout=30))

    at = page("manage.py")
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    [error] = table[table["服务"] == "flaky"]["最近错误"].tolist()
    assert error.startswith("v2 的部署在冒烟测试阶段失败：algo-flaky-2 不健康：SETUP_FAILED（setup() 抛出了异常）"), error
    assert "model file missing" in error
    history = at.tabs[2].dataframe[0].value.to_dict("records")   # logs, routing, history, …
    [failed] = [h for h in history if h["失败阶段"] == "冒烟测试"]
    assert failed["最近错误"].startswith("algo-flaky-2 不健康：SETUP_FAILED（setup() 抛出了异常）"), failed

    english = page("manage.py").run()
    assert table_row(english, "flaky")["Last error"].startswith(
        "deploy of v2 failed at smoke: algo-flaky-2 is not healthy: SETUP_FAILED (setup() raised)")


def test_manage_page_shows_a_fatal_replica_with_its_log_tail(env: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "crash-now"
    env.catalog.upload(ADMIN, str(crashable_package(tmp_path, "crashy")))
    env.deployer.deploy(OPERATOR, DeployRequest("crashy", env={"CRASH_FLAG": str(flag)}))
    flag.write_text("corrupt")
    os.kill(env.services.get(OPERATOR, "crashy").replicas[0].pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while env.services.get(OPERATOR, "crashy").state is not ServiceState.FATAL:
        assert time.monotonic() < deadline, env.services.get(OPERATOR, "crashy")
        time.sleep(0.3)

    at = page("manage.py", Actor("v", Role.VIEWER)).run()
    assert not at.exception
    row = table_row(at, "crashy")
    assert row["State"] == "🔴 FATAL" and row["Replicas"] == "0/1"
    assert "algo-crashy-1 FATAL" in row["Last error"] and "cannot load model.bin" in row["Last error"]
    assert any("algo-crashy-1" in w.value and "FATAL" in w.value for w in at.warning)
    assert any("cannot load model.bin: the file is corrupt" in c.value for c in at.code)
    assert not at.button  # a viewer gets no action buttons


def test_docker_runtime_from_the_deploy_and_manage_pages(env: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runtimes from the pages: hello deployed in a container (Podman's Docker API), then
    stopped, started, restarted and removed on the manage page; nothing is left behind."""
    import docker
    from tests.engines import DOCKER_HOST
    monkeypatch.setenv("DOCKER_HOST", DOCKER_HOST)
    env.catalog.upload(ADMIN, str(FIXTURES / "hello"))
    at = page("deploy.py").run()
    at.radio[0].set_value("docker").run()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    url = at.success[0].value.split()[-1]
    wait_ready(url)
    engine = docker.DockerClient(base_url=DOCKER_HOST)
    assert engine.containers.get("algo-hello-1").status == "running"

    at = page("manage.py").run()
    assert table_row(at, "hello")["Runtime"] == "docker"
    at.multiselect[0].select("hello").run()
    for action, state in (("stop", "exited"), ("start", "running"), ("restart", "running")):
        at.button(key=f"bulk-{action}").click().run()
        assert [s.value for s in at.success] == [f"{action.title()}: hello"], [e.value for e in at.error]
        assert engine.containers.get("algo-hello-1").status == state
    wait_ready(url)
    at.button(key="bulk-remove").click().run()
    assert [s.value for s in at.success] == ["Remove: hello"]
    assert engine.containers.list(all=True, filters={"name": "algo-hello-1"}) == []
    assert env.ports.reservations() == {}
