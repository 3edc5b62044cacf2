"""The routing table as the gateway serves it (pure parts): canary weights, routes per service and
per version, the health verdict, and the access-log figures."""
from __future__ import annotations

import json

import pytest

from app.i18n import say
from app.services.gateway import GatewaySettings, RoutedReplica, ServiceRoutes, build_spec, weights
from app.services.gateway_log import GatewayMetrics, figures, parse
from app.services.monitor import IN, verdict
from orchestration.errors import restored, stored
from orchestration.health import Health

SETTINGS = GatewaySettings("127.0.0.1", 8080, True, "unix:/run/agent.sock", 100, 50)


def replicas(*versions: str) -> tuple[RoutedReplica, ...]:
    return tuple(RoutedReplica(f"algo-s-{i}", f"http://127.0.0.1:{18000 + i}", v) for i, v in enumerate(versions, 1))


@pytest.mark.parametrize("stable, trial, percent", [(2, 1, 20), (1, 1, 10), (3, 2, 35), (1, 3, 50), (4, 1, 5)])
def test_canary_weights_give_the_trial_version_its_share(stable, trial, percent):
    rs = replicas(*(["v1"] * stable + ["v2"] * trial))
    w = weights(rs, "v2", percent)
    share = sum(w[r.name] for r in rs if r.version == "v2") / sum(w.values())
    assert share == pytest.approx(percent / 100)
    assert len({w[r.name] for r in rs if r.version == "v1"}) == 1   # stable replicas share equally


def test_without_a_canary_every_replica_weighs_the_same():
    assert set(weights(replicas("v1", "v1"), None, 0).values()) == {1}
    assert set(weights(replicas("v2", "v2"), "v2", 20).values()) == {1}   # only the trial runs: it takes all


def test_the_spec_has_a_route_per_service_and_per_running_version():
    views = [ServiceRoutes("hello", "v1", "v2", 20, replicas("v1", "v1", "v2"), max_body_mb=8, timeout_s=12),
             ServiceRoutes("idle", "v3", None, 0, ())]
    spec = build_spec(views, SETTINGS)
    routes = {r.name: r for r in spec.routes}
    assert set(routes) == {"hello", "hello@v1", "hello@v2", "idle"}
    assert len(routes["hello"].backends) == 3 and len(routes["hello@v2"].backends) == 1
    assert routes["hello"].max_body_mb == 8 and routes["hello"].timeout_s == 12
    assert routes["idle"].backends == ()   # kept: it answers a JSON 503
    assert spec.auth == "unix:/run/agent.sock"
    orphan = build_spec([ServiceRoutes("old", "?", None, 0, replicas("?"))], SETTINGS)
    assert [r.name for r in orphan.routes] == ["old"]   # no pinned route for a version that is gone
    open_spec = build_spec(views, GatewaySettings("0.0.0.0", 80, False, "unix:/a.sock", 0, 0))
    assert open_spec.auth is None and open_spec.index == "unix:/a.sock"


@pytest.mark.parametrize("health, expected", [
    (Health("READY"), IN), (Health("BUSY"), IN),
    (Health("STARTING"), "out: /health says STARTING"),
    (Health("UNREACHABLE", "ReadTimeout: timed out"), "out: no answer within the probe timeout of 1 s"),
    (Health("UNREACHABLE", "ConnectError: refused"), "out: not reachable"),
])
def test_the_verdict_says_why_a_replica_is_out(health, expected):
    assert verdict(health, 1.0).startswith(expected)


@pytest.mark.parametrize("health, zh", [
    (Health("STARTING"), "不接收流量：/health 返回 STARTING"),
    (Health("SETUP_FAILED", "model missing"), "不接收流量：/health 返回 SETUP_FAILED（model missing）"),
    (Health("UNREACHABLE", "ReadTimeout: timed out"), "不接收流量：探测在 1.5 秒内没有应答"),
    (Health("UNREACHABLE", "ConnectError: refused"), "不接收流量：无法连接（ConnectError: refused）"),
])
def test_the_verdict_is_said_in_chinese_with_the_probes_own_words(health, zh):
    note = verdict(health, 1.5)
    assert say(note, "zh") == zh
    assert say(restored(json.loads(json.dumps(stored(note)))), "zh") == zh   # as the Manage page reads it back


def test_access_log_lines_become_figures_and_prometheus_series():
    lines = [json.dumps({"time": 1, "service": "hello", "replica": "127.0.0.1:18001", "status": s,
                         "request_s": ms / 1000}).encode() for s, ms in ((200, 2), (200, 4), (503, 1), (200, 10))]
    entries = parse([*lines, b'{"broken', b""])
    assert len(entries) == 4
    f = figures(entries, 2.0)
    assert (f.requests, f.errors, f.per_s, f.p50_ms) == (4, 1, 2.0, 2.0) and f.error_rate == 0.25
    m = GatewayMetrics()
    m.feed(entries)
    text = m.exposition().decode()
    assert 'algostage_gateway_requests_total{code="200",replica="127.0.0.1:18001",service="hello"} 3.0' in text
    assert 'algostage_gateway_errors_total{replica="127.0.0.1:18001",service="hello"} 1.0' in text
