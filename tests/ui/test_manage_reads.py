"""Cheap reruns: the Manage page over 50 services reads each runtime once per refresh, and a rerun
within the cache's life reads none; an action clears the cache so the table shows its result."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.auth import Actor, Role
from app.db import transaction
from app.models import Algorithm, AlgorithmService, ServiceReplica
from app.platform import Platform
from orchestration.supervisor import SupervisorRuntime
from tests.conftest import ROOT, empty_tables, private_port_range

ADMIN = Actor("boss", Role.ADMIN)
SERVICES = 50


@pytest.fixture
def env(migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    environ = {"ALGOSTAGE_HOME": str(tmp_path / "home"), "DATABASE_URL": migrated_db_url,
               "ALGOSTAGE_PORT_RANGE": private_port_range()}
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    p = Platform.open(Path(environ["ALGOSTAGE_HOME"]), environ, migrate=False)
    empty_tables(p.engine)
    with transaction(p.sessions) as s:
        algo = Algorithm(name="hello", title="Hello", task="text.classification", created_by="t")
        s.add(algo)
        s.flush()
        for i in range(SERVICES):
            svc = AlgorithmService(name=f"svc-{i:02d}", algorithm_id=algo.id, runtime="supervisor", created_by="t")
            svc.replica_rows.append(ServiceReplica(index=1, backend_name=f"algo-svc-{i:02d}-1", port=30000 + i,
                                                   endpoint=f"http://127.0.0.1:{30000 + i}"))
            s.add(svc)
    yield p
    p.daemon.shutdown()
    p.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How often the page reads the supervisor runtime, by method."""
    counts: Counter = Counter()
    for method in ("list", "status", "usage", "logs"):
        real = getattr(SupervisorRuntime, method)

        def counting(self, *args, _real=real, _method=method, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            counts[_method] += 1
            return _real(self, *args, **kw)
        monkeypatch.setattr(SupervisorRuntime, method, counting)
    return counts


def test_a_refresh_of_50_services_reads_each_runtime_once(env: Platform, reads: Counter) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "manage.py"), default_timeout=120)
    at.session_state["actor"] = ADMIN
    at.session_state["lang"] = "en"
    at.run()
    assert not at.exception
    assert len(at.dataframe[0].value) == SERVICES
    assert reads["list"] == 1 and reads["usage"] == 1 and reads["status"] == 0
    at.run()   # a rerun within the cache's life (a click elsewhere on the page)
    assert reads["list"] == 1 and reads["usage"] == 1


def test_an_action_shows_its_result_in_the_table_at_once(env: Platform, reads: Counter) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "manage.py"), default_timeout=120)
    at.session_state["actor"] = ADMIN
    at.session_state["lang"] = "en"
    at.run()
    at.multiselect[0].set_value(["svc-00"]).run()
    next(b for b in at.button if b.key == "bulk-remove").click().run()
    assert not at.exception
    assert any("svc-00" in s.value for s in at.success), ([e.value for e in at.error], [s.value for s in at.success])
    assert len(at.dataframe[0].value) == SERVICES - 1   # the table after the action, not before it
    assert reads["list"] >= 2
