"""The demo catalog as the README's first command installs it: media seeded, every demo algorithm
uploaded, deployed as a service on the supervisor runtime, and answering on its own samples."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import demo
from app.platform import Platform
from app.storage import DEMO_BUCKET
from tests.conftest import ADMIN, VIEWER, private_port_range

pytestmark = pytest.mark.timeout(1800)

EXPECTED_KEYS = {
    "text.classification": {"label", "score", "scores"},
    "text.ner": {"entities"},
    "image.detection": {"boxes"},
    "image.ocr": {"lines"},
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, pg_server,
              shared_envs: Path) -> Iterator[tuple[Platform, demo.DemoReport]]:
    """On a database of its own (PostgreSQL), so it does not share tables with other modules."""
    home = tmp_path_factory.mktemp("demo-home")
    environ = {"ALGOSTAGE_HOME": str(home), "DATABASE_URL": pg_server.create_database(),
               "ALGOSTAGE_PORT_RANGE": private_port_range(), "ALGOSTAGE_ENV_DIR": str(shared_envs)}
    p = Platform.open(home, environ)
    p.daemon.start()
    report = demo.install(p, ADMIN)
    yield p, report
    p.daemon.shutdown()
    p.close()


def test_every_demo_algorithm_is_uploaded_and_deployed(installed: tuple[Platform, demo.DemoReport]) -> None:
    p, report = installed
    names = sorted(a.name for a in p.catalog.list(VIEWER))
    assert len(names) >= 7
    assert report.failed == {}
    assert sorted(report.uploaded) == names and sorted(report.deployed) == names
    views = {v.name: v for v in p.services.list(VIEWER)}
    assert sorted(views) == names
    assert all(v.state.value == "RUNNING" for v in views.values())


def test_every_demo_service_answers_on_its_first_sample(installed: tuple[Platform, demo.DemoReport]) -> None:
    p, _ = installed
    for algo in p.catalog.list(VIEWER):
        version = algo.latest
        sample = (version.manifest.get("samples") or [f for f in version.files if f.startswith("samples/")])[0]
        data = p.catalog.read_file(VIEWER, algo.name, version.number, sample)
        value = data.decode().strip().splitlines()[0] if sample.endswith(".txt") else data
        result = p.invoker.invoke(VIEWER, algo.name, [value], input_ref=sample)
        output = result.outputs[0]
        assert EXPECTED_KEYS[algo.task] <= set(output), (algo.name, output)
        assert result.predict_ms is not None and result.total_ms >= result.predict_ms
        json.dumps(output)


def test_demo_media_is_seeded_and_a_second_install_changes_nothing(installed: tuple[Platform, demo.DemoReport]) -> None:
    p, first = installed
    keys = {o.key for o in p.objects.list(DEMO_BUCKET)}
    assert {"media/vtest.avi", "media/Megamind.avi", "media/messi5.jpg"} <= keys
    assert any(k.startswith("text/") for k in keys)
    assert first.seeded
    again = demo.install(p, ADMIN)
    assert again.seeded == [] and again.uploaded == [] and again.deployed == []
    assert sorted(again.running) == sorted(first.deployed)


def test_sample_paths_exist_in_every_demo_package() -> None:
    for package in demo.demo_packages():
        assert any(Path(package, "samples").iterdir()), package
