"""The Open Inference Protocol v2 through the gateway, driven by tritonclient's HTTP client (a client
nobody here wrote) on a platform started by `up` (real nginx, supervisord, agent, runner): health,
metadata and infer of a deployed text service at /ai/<service>/v2/… and at its pinned version
/ai/<service>@v1/v2/…, with an API key as `Authorization: Bearer`; no key is a 401 the client
reports; a request id goes through to the replica, which logs it when it refuses the request."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import ROOT, free_port, private_port_range
from tests.support_platform import RunningPlatform, start_platform, stop_platform

pytestmark = pytest.mark.timeout(600)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp("gateway-v2") / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_PORT_RANGE=private_port_range(), ALGOSTAGE_ENV_DIR=str(shared_envs),
                       ALGOSTAGE_GATEWAY_PORT=str(free_port()))
    p.cli("upload", str(FIXTURES / "hello"), check=True)
    p.cli("deploy", "hello", check=True, timeout=600)
    yield p
    stop_platform(p)


@pytest.fixture(scope="module")
def key(running: RunningPlatform) -> str:
    return json.loads(running.cli("key", "create", "triton", "--services", "hello", "--json", check=True).stdout)["key"]


def client(running: RunningPlatform, route: str = "hello") -> triton.InferenceServerClient:
    """tritonclient pointed at the gateway's route of the service: it puts v2/… after the path."""
    return triton.InferenceServerClient(url=f"127.0.0.1:{running.env['ALGOSTAGE_GATEWAY_PORT']}/ai/{route}",
                                        network_timeout=30)


def texts(items: list[str], binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("input", [len(items)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in items], dtype=np.object_), binary_data=binary)
    return tensor


def bearer(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


@pytest.mark.parametrize("route", ["hello", "hello@v1"])
def test_health_metadata_and_infer_through_the_gateway(running: RunningPlatform, key: str, route: str) -> None:
    c = client(running, route)
    assert c.is_server_live(headers=bearer(key)) and c.is_server_ready(headers=bearer(key))
    assert c.is_model_ready("hello", headers=bearer(key))
    meta = c.get_model_metadata("hello", headers=bearer(key))
    assert meta["name"] == "hello" and meta["versions"] == ["v1"]
    assert meta["parameters"]["task"] == "text.classification" and "threshold" in meta["parameters"]["params"]
    for binary in (True, False):
        result = c.infer("hello", [texts(["hi", "a long sentence"], binary)], headers=bearer(key),
                         parameters={"n": 3}, request_id=f"{route}-{binary}",
                         outputs=[triton.InferRequestedOutput("output", binary_data=binary)])
        labels = [json.loads(item)["label"] for item in result.as_numpy("output")]
        assert labels == ["short", "long"]
        response = result.get_response()
        assert response["id"] == f"{route}-{binary}" and response["model_version"] == "v1"


def test_without_a_key_the_client_gets_the_gateways_401(running: RunningPlatform) -> None:
    c = client(running)
    with pytest.raises(InferenceServerException) as info:
        c.infer("hello", [texts(["hi"])])
    assert info.value.status() == "401"
    with pytest.raises(InferenceServerException) as info:
        c.get_model_metadata("hello", headers=bearer("ask_not-a-key"))
    assert info.value.status() == "401"


def test_a_refused_infer_is_the_protocols_400_and_the_replica_logs_its_request_id(running: RunningPlatform,
                                                                                   key: str) -> None:
    c = client(running)
    wrong = triton.InferInput("input", [1], "INT32")
    wrong.set_data_from_numpy(np.array([7], dtype=np.int32))
    with pytest.raises(InferenceServerException) as info:
        c.infer("hello", [wrong], headers=bearer(key, **{"X-Request-Id": "v2-wrong-type-1"}))
    assert info.value.status() == "400" and "BYTES" in info.value.message()
    deadline, log = time.monotonic() + 10, ""
    while "v2-wrong-type-1" not in log and time.monotonic() < deadline:
        log = running.cli("logs", "hello", "--lines", "200", check=True).stdout
        time.sleep(0.2)
    [line] = [x for x in log.splitlines() if "request_id=v2-wrong-type-1" in x]
    assert "WARNING" in line and "/v2/models/hello/infer 400" in line
