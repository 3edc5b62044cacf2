"""The Manage page's Cluster section and Scale control through AppTest, over a platform whose
cluster is the real swarm runtime on a fake two-node manager (tests/fake_swarm.py): the nodes for
every role, Drain / Activate for operators with the table showing the change at once, the join
command for admins only, one line (no traceback) when no swarm manager answers, the Chinese UI;
and scaling a running service down from the page with the table updated right after."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.auth import Actor, Role
from app.db import transaction
from app.models import (
    Algorithm,
    AlgorithmService,
    AlgorithmVersion,
    PortReservation,
    ServiceReplica,
)
from app.platform import Platform
from app.services.cluster import Cluster
from components.session import _platform
from components.session import platform as page_platform
from orchestration.swarm import SwarmRuntime
from tests.conftest import ROOT, private_port_range
from tests.fake_swarm import (
    MANAGER_ID,
    MANAGER_TOKEN,
    WORKER_ID,
    WORKER_TOKEN,
    FakeSwarmEngine,
    fake_swarm,
)

ADMIN = Actor("boss", Role.ADMIN)
OPERATOR = Actor("op", Role.OPERATOR)
VIEWER = Actor("vera", Role.VIEWER)


@pytest.fixture
def page_p(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """The platform the page itself uses (components.session), over the test's home and database."""
    monkeypatch.setenv("ALGOSTAGE_HOME", str(platform.home))
    monkeypatch.setenv("DATABASE_URL", platform.environ["DATABASE_URL"])
    monkeypatch.setenv("ALGOSTAGE_PORT_RANGE", private_port_range())
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    p = page_platform()
    yield p
    if "daemon" in p.__dict__:
        p.daemon.shutdown()
    p.close()
    _platform.clear()


@pytest.fixture
def engine(page_p: Platform) -> FakeSwarmEngine:
    runtime, engine = fake_swarm()
    page_p.cluster = Cluster({"swarm": runtime})
    return engine


def manage(actor: Actor, lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "manage.py"), default_timeout=120)
    at.session_state["actor"] = actor
    at.session_state["lang"] = lang
    return at.run()


def nodes_table(at: AppTest, header: str = "Node") -> pd.DataFrame:
    return next(d.value for d in at.dataframe if header in d.value.columns)


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "code", "info", "success", "error")
                     for e in getattr(at, kind))


def test_operators_see_the_nodes_and_drain_and_activate_one(engine: FakeSwarmEngine, page_p: Platform) -> None:
    at = manage(OPERATOR)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value == "Cluster" for s in at.subheader)
    table = nodes_table(at)
    assert list(table.columns) == ["Node", "Role", "Availability", "State", "Address", "CPUs", "Memory (MB)", "Tasks"]
    assert table.to_dict("records") == [
        {"Node": "alpha", "Role": "manager · leader", "Availability": "active", "State": "🟢 ready",
         "Address": "10.9.0.1", "CPUs": 4.0, "Memory (MB)": 8192, "Tasks": 1},
        {"Node": "beta", "Role": "worker", "Availability": "active", "State": "🟢 ready",
         "Address": "10.9.0.2", "CPUs": 2.0, "Memory (MB)": 4096, "Tasks": 2}]
    assert button(at, f"cluster-drain-{WORKER_ID}").label == "Drain"
    assert button(at, f"cluster-active-{WORKER_ID}").disabled        # already active
    assert WORKER_TOKEN not in texts(at) and "docker swarm join" not in texts(at)   # an admin's right

    button(at, f"cluster-drain-{WORKER_ID}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert engine.availability("beta") == "drain" and engine.availability("alpha") == "active"
    assert [s.value for s in at.success] == ["beta is now drained"]
    assert nodes_table(at)["Availability"].tolist() == ["active", "drained"]   # the table after the action
    assert button(at, f"cluster-drain-{WORKER_ID}").disabled and not button(at, f"cluster-active-{WORKER_ID}").disabled

    button(at, f"cluster-active-{WORKER_ID}").click().run()
    assert engine.availability("beta") == "active" and [s.value for s in at.success] == ["beta is now active"]
    assert nodes_table(at)["Availability"].tolist() == ["active", "active"]


def test_admins_see_the_worker_join_command_and_viewers_no_actions(engine: FakeSwarmEngine, page_p: Platform) -> None:
    at = manage(ADMIN)
    assert not at.exception
    assert f"docker swarm join --token {WORKER_TOKEN} 10.9.0.1:2377" in [c.value for c in at.code]
    assert MANAGER_TOKEN not in texts(at)
    assert button(at, f"cluster-drain-{MANAGER_ID}")

    at = manage(VIEWER)
    assert not at.exception and len(nodes_table(at)) == 2
    assert not [b for b in at.button if (b.key or "").startswith("cluster-")]
    assert WORKER_TOKEN not in texts(at) and "docker swarm join" not in texts(at)


def test_the_chinese_cluster_section(engine: FakeSwarmEngine, page_p: Platform) -> None:
    at = manage(ADMIN, "zh")
    assert not at.exception and any(s.value == "集群" for s in at.subheader)
    table = nodes_table(at, "节点")
    assert list(table.columns) == ["节点", "角色", "可调度性", "状态", "地址", "CPU 数", "内存（MB）", "任务数"]
    assert table[["角色", "可调度性", "状态"]].values.tolist() == [["管理节点 · 主节点", "可调度", "🟢 就绪"],
                                                             ["工作节点", "可调度", "🟢 就绪"]]
    assert button(at, f"cluster-drain-{WORKER_ID}").label == "排空"
    assert button(at, f"cluster-active-{WORKER_ID}").label == "激活"
    assert "其他机器以工作节点身份加入集群的命令：" in [c.value for c in at.caption]
    button(at, f"cluster-drain-{WORKER_ID}").click().run()
    assert [s.value for s in at.success] == ["beta 现在为 已排空"]
    assert nodes_table(at, "节点")["可调度性"].tolist() == ["可调度", "已排空"]


@pytest.mark.parametrize("lang, prefix, why", [
    ("en", "No swarm: swarm manager at unix://", "is not reachable: nothing listens at that socket"),
    ("zh", "没有可用的 Swarm：无法连接位于 unix://", "的 Swarm 管理节点：该套接字上没有服务在监听")])
def test_no_swarm_manager_is_one_line(page_p: Platform, tmp_path: Path, lang: str, prefix: str, why: str) -> None:
    page_p.cluster = Cluster({"swarm": SwarmRuntime(docker_host=f"unix://{tmp_path}/none.sock")})
    at = manage(ADMIN, lang)
    assert not at.exception and not at.error
    said = [i.value for i in at.info if i.value.startswith(prefix)]
    assert len(said) == 1 and "\n" not in said[0], [i.value for i in at.info]
    assert said[0].endswith(why) and "Traceback" not in said[0]
    assert not [d for d in at.dataframe if "Node" in d.value.columns or "节点" in d.value.columns]


# --- scaling ------------------------------------------------------------------------------------

def seed_service(p: Platform, replicas: int) -> None:
    """A running service of v1 with `replicas` replicas on the supervisor runtime (their ports reserved)."""
    with transaction(p.sessions) as s:
        algo = Algorithm(name="hello", title="Hello", task="text.classification", created_by="t")
        s.add(algo)
        s.flush()
        version = AlgorithmVersion(algorithm_id=algo.id, number=1, tag="v1", commit_sha="0" * 40,
                                   manifest={"name": "hello"}, files=[], created_by="t")
        s.add(version)
        s.flush()
        svc = AlgorithmService(name="svc", algorithm_id=algo.id, version_id=version.id, runtime="supervisor",
                               replicas=replicas, created_by="t")
        for i in range(1, replicas + 1):
            svc.replica_rows.append(ServiceReplica(index=i, version_id=version.id, backend_name=f"algo-svc-{i}",
                                                   port=31000 + i, endpoint=f"http://127.0.0.1:{31000 + i}"))
            s.add(PortReservation(port=31000 + i, owner=f"algo-svc-{i}"))
        s.add(svc)


def test_an_operator_scales_a_running_service_down_and_the_table_shows_it(page_p: Platform) -> None:
    seed_service(page_p, 3)
    at = manage(OPERATOR)
    assert not at.exception, at.exception
    count = next(n for n in at.number_input if n.key == "scale-svc")
    assert count.label == "Replicas" and count.value == 3
    count.set_value(1)
    button(at, "scale-apply-svc").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["svc runs 1 replica(s): removed algo-svc-2, algo-svc-3"]
    services = next(d.value for d in at.dataframe if "Replicas" in d.value.columns and "Service" in d.value.columns)
    assert services["Replicas"].tolist() == ["0/1"]            # the table after the scale, not before it
    assert [r.name for r in page_p.services.get(OPERATOR, "svc").replicas] == ["algo-svc-1"]
    assert next(n for n in at.number_input if n.key == "scale-svc").value == 1

    refused = next(n for n in at.number_input if n.key == "scale-svc")
    assert refused.max == 16 and refused.min == 1


def test_viewers_get_no_scale_control_and_a_stopped_service_none(page_p: Platform) -> None:
    seed_service(page_p, 2)
    at = manage(VIEWER)
    assert not at.exception and not [n for n in at.number_input if n.key == "scale-svc"]
    with transaction(page_p.sessions) as s:
        s.query(AlgorithmService).filter_by(name="svc").one().desired_state = "stopped"
    at = manage(ADMIN)
    assert not at.exception and not [n for n in at.number_input if n.key == "scale-svc"]
