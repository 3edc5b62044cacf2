"""Issue 14, finding 5: after a warm `up` (the demo catalog deployed, the platform stopped with
`down`, environments in place) returned, services answered 503 STARTING for ~10 s, so a demo
started at once failed. `up` returns when every service answers: a Showcase run on each demo
service, made the moment `up` returns, succeeds."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.platform import Platform
from app.showcase.inputs import InputData
from app.showcase.runs import ServiceChoice
from app.storage import DEMO_BUCKET
from tests.conftest import ADMIN, free_port, private_port_range
from tests.support_platform import RunningPlatform, run_cli, start_platform, stop_platform

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def demo_platform(tmp_path_factory: pytest.TempPathFactory, shared_envs: Path) -> Iterator[RunningPlatform]:
    """A platform started by `up` with the demo catalog deployed by `demo`, as scripts/up.sh does."""
    home = tmp_path_factory.mktemp("warm") / "home"
    p = start_platform(home, free_port(), ALGOSTAGE_ENV_DIR=str(shared_envs),
                       ALGOSTAGE_PORT_RANGE=private_port_range())
    try:
        run_cli(p.env, "demo", check=True, timeout=1500)
        yield p
    finally:
        stop_platform(p)


def demo_input(p: Platform, choice: ServiceChoice) -> InputData:
    """What the Showcase opens on for `choice`: its manifest's demo input, else the gallery's first
    item of its kind."""
    if choice.demo and choice.demo.input:
        return p.showcase.load(ADMIN, f"{DEMO_BUCKET}/{choice.demo.input}")
    return p.showcase.load(ADMIN, p.showcase.gallery(ADMIN, choice.input_kind)[0].ref)


def test_a_showcase_run_on_every_demo_service_succeeds_the_moment_a_warm_up_returns(
        demo_platform: RunningPlatform) -> None:
    deployed = {s["name"] for s in json.loads(demo_platform.cli("services", "--json", check=True).stdout)}
    assert len(deployed) >= 7, deployed
    run_cli(demo_platform.env, "down", check=True)
    run_cli(demo_platform.env, "up", check=True, timeout=600)
    returned = time.monotonic()
    p = Platform.open(demo_platform.home, demo_platform.env, migrate=False)
    try:
        choices = {c.name: c for c in p.showcase.services(ADMIN)}
        assert set(choices) == deployed
        inputs = {name: demo_input(p, c) for name, c in choices.items()}
        results = {name: p.showcase.run(ADMIN, name, inputs[name], {}, force=True) for name in choices}
        first_calls_s = time.monotonic() - returned
    finally:
        p.close()
    failed = {name: r.error for name, r in results.items() if not r.ok or r.error}
    assert failed == {}, failed                  # no 503 STARTING, no service down
    assert not any(r.cached for r in results.values())
    assert all(choices[n].state == "RUNNING" for n in results)
    assert first_calls_s < 120, first_calls_s    # the calls answered, not after a minute of retries
