"""Access through the gateway on a platform started by `up` (real nginx, supervisord, agent, runner):
a request without a valid key — none, unknown, revoked, expired, or for another service — gets
401/403 as JSON and never reaches a replica; a key over its rate gets 429; GET /ai/ lists the
routes a key may call; the platform's /metrics counts what went through; request ids are kept."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, private_port_range
from tests.support_platform import RunningPlatform, start_platform, stop_platform

pytestmark = pytest.mark.timeout(600)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
CACHE_S = 5   # nginx keeps a key check's answer this long


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp("gateway") / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(), ALGOSTAGE_ENV_DIR=str(shared_envs),
                       ALGOSTAGE_GATEWAY_PORT=str(free_port()), ALGOSTAGE_GATEWAY_RATE="5",
                       ALGOSTAGE_GATEWAY_BURST="5")
    p.cli("upload", str(FIXTURES / "hello"), check=True)
    p.cli("deploy", "hello", check=True, timeout=600)
    p.cli("upload", str(FIXTURES / "slow_predict"), check=True)
    p.cli("deploy", "slow-predict", check=True, timeout=600)
    yield p
    stop_platform(p)


@pytest.fixture(scope="module")
def gateway(running: RunningPlatform) -> str:
    return f"http://127.0.0.1:{running.env['ALGOSTAGE_GATEWAY_PORT']}"


def new_key(running: RunningPlatform, name: str, *args: str) -> str:
    return json.loads(running.cli("key", "create", name, "--json", *args, check=True).stdout)["key"]


def replica_url(running: RunningPlatform, service: str) -> str:
    svc = next(s for s in json.loads(running.cli("services", "--json", check=True).stdout) if s["name"] == service)
    return svc["urls"][0]


def predicts_served(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("algostage_requests_total") and 'endpoint="predict"' in line)


def call(gateway: str, key: str | None, service: str = "hello") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gateway}/ai/{service}/predict", json={"inputs": ["hi"]}, headers=headers, timeout=10)


def test_requests_without_a_valid_key_never_reach_a_replica(running, gateway):
    served = replica_url(running, "hello")
    good = new_key(running, "good")
    other = new_key(running, "other", "--services", "slow-predict")
    short = new_key(running, "short", "--expires", str(3 / 86400))   # three seconds
    revoked = new_key(running, "revoked")
    assert call(gateway, revoked).status_code == 200
    running.cli("key", "revoke", "revoked", check=True)
    time.sleep(CACHE_S + 1)   # past the key check's cache and the short key's life
    before = predicts_served(served)
    for key, status in ((None, 401), ("ask_not-a-key", 401), (revoked, 401), (short, 401), (other, 403)):
        reply = call(gateway, key)
        assert reply.status_code == status, (key, reply.text)
        assert reply.headers["content-type"] == "application/json" and reply.json()["service"] == "hello"
    assert predicts_served(served) == before
    assert call(gateway, other, "slow-predict").status_code == 200
    assert call(gateway, good).status_code == 200 and predicts_served(served) == before + 1
    listed = json.loads(running.cli("key", "list", "--json", check=True).stdout)
    assert {k["name"]: k["state"] for k in listed}["revoked"] == "revoked"


def test_a_key_over_its_rate_gets_429(running, gateway):
    key = new_key(running, "busy")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: call(gateway, key).status_code, range(40)))
    assert codes.count(200) >= 5 and codes.count(429) > 0, codes
    assert set(codes) <= {200, 429}
    time.sleep(2)
    assert call(gateway, key).status_code == 200


def test_the_route_list_shows_what_a_key_may_call(running, gateway):
    key = new_key(running, "lister", "--services", "hello")
    routes = httpx.get(f"{gateway}/ai/", headers={"Authorization": f"Bearer {key}"}, timeout=5).json()["routes"]
    assert [r["service"] for r in routes] == ["hello"] and routes[0]["predict"] == "/ai/hello/predict"
    assert httpx.get(f"{gateway}/ai/", timeout=5).status_code == 401


def test_request_ids_and_the_platform_metrics(running, gateway):
    key = new_key(running, "metered")
    reply = httpx.post(f"{gateway}/ai/hello/predict", json={"inputs": ["hi"]}, timeout=10,
                       headers={"Authorization": f"Bearer {key}", "X-Request-Id": "req-42"})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "req-42"
    assert httpx.post(f"{gateway}/ai/hello/predict", json={"inputs": ["hi"]}, timeout=10,
                      headers={"Authorization": f"Bearer {key}"}).headers["x-request-id"]
    log = (running.home / "gateway" / "access.log").read_text()
    assert '"request_id":"req-42"' in log
    metrics = httpx.get(f"{gateway}/metrics", timeout=5).text
    assert 'algostage_gateway_requests_total{code="200"' in metrics and 'service="hello"' in metrics
    assert 'code="401"' in metrics
