"""`python -m app export compose` as an operator uses it: the Compose file of a deployed service,
deployed with `docker stack deploy` on Docker Engine's swarm (tests/engines.py), serves — its
tasks answer /health READY and /predict on the ports they publish on the node; and the Kubernetes
export of the same service validates against the schemas."""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import kubernetes_validate
import pytest
import yaml

from sqlalchemy.orm import selectinload

from app.models import AlgorithmService
from app.platform import Platform
from app.services.deployer import DeployRequest
from app.services.rows import get_service
from orchestration.docker import DockerRuntime
from orchestration.runtime import ReplicaSpec
from tests.conftest import ADMIN, ROOT, OPERATOR, private_port_range
from tests.engines import BASE_IMAGE, DOCKERD_HOST, REGISTRY

pytestmark = pytest.mark.timeout(900)
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"
STACK = "algostage-test-export"


def package_as(tmp_path: Path, fixture: str, name: str) -> Path:
    pkg = tmp_path / f"{fixture}-{name}"
    shutil.copytree(FIXTURES / fixture, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((pkg / "algorithm.yaml").read_text())
    data.update(name=name, replicas=2)
    (pkg / "algorithm.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return pkg


def docker_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "--host", DOCKERD_HOST, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stack(docker_engine: docker.DockerClient) -> Iterator[str]:
    docker_cli("stack", "rm", STACK)
    yield STACK
    docker_cli("stack", "rm", STACK)
    deadline = time.monotonic() + 60   # the stack's network goes once its tasks are gone
    while docker_engine.networks.list(names=[f"{STACK}_algostage"]) and time.monotonic() < deadline:
        time.sleep(1)


def push(engine: docker.DockerClient, spec: ReplicaSpec, image: str) -> None:
    """What the swarm runtime does when it deploys: the docker runtime's image, pushed to the registry."""
    runtime = DockerRuntime(engine, docker_host=DOCKERD_HOST, base_image=BASE_IMAGE)
    runtime.build(spec, lambda line: None)
    repository, _, tag = image.rpartition(":")
    engine.images.get(image.removeprefix(f"{REGISTRY}/")).tag(repository, tag)
    for line in engine.images.push(repository, tag, stream=True, decode=True):
        assert "error" not in line, line


def task_urls(engine: docker.DockerClient, service: str) -> list[str]:
    """Where the running tasks of `service` publish their port (host mode: on this node). A task
    may publish it twice, on IPv4 first and then on IPv6 — not always on the same port number (as
    the swarm runtime does, tests/integration/test_swarm_runtime.py, the first is the one used)."""
    tasks = engine.api.tasks(filters={"service": service, "desired-state": "running"})
    return sorted(f"http://127.0.0.1:{ports[0]['PublishedPort']}" for t in tasks if t["Status"]["State"] == "running"
                  for ports in [t["Status"].get("PortStatus", {}).get("Ports", [])] if ports)


def test_the_compose_export_deploys_with_docker_stack_deploy_and_serves(
        tmp_path: Path, shared_envs: Path, docker_engine: docker.DockerClient, stack: str) -> None:
    home = tmp_path / "home"
    p = Platform.open(home, {"ALGOSTAGE_HOME": str(home), "ALGOSTAGE_ENV_DIR": str(shared_envs),
                             "ALGOSTAGE_PORT_RANGE": private_port_range(), "ALGOSTAGE_SWARM_REGISTRY": REGISTRY})
    try:
        p.catalog.upload(ADMIN, str(package_as(tmp_path, "hello", "test-export")))
        p.deployer.deploy(OPERATOR, DeployRequest("test-export"))
        text = p.exporter.render(OPERATOR, "compose", ["test-export"])
        k8s = list(yaml.safe_load_all(p.exporter.render(OPERATOR, "kubernetes", ["test-export"])))
        with p.sessions() as s:
            version = get_service(s, "test-export", selectinload(AlgorithmService.version)).version
        spec = ReplicaSpec("test-export", 1, version.tag, version.commit_sha, p.deployer.export("test-export", version),
                           8000, requirements_hash=version.requirements_hash)
        push(docker_engine, spec, p.exporter.workloads(OPERATOR, ["test-export"])[0].image)
    finally:
        p.services.remove(ADMIN, ["test-export"])
        p.daemon.shutdown()
        p.close()
    assert [d["kind"] for d in k8s] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for doc in k8s:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
    (tmp_path / "stack.yml").write_text(text)

    done = docker_cli("stack", "deploy", "--compose-file", str(tmp_path / "stack.yml"), stack)
    assert done.returncode == 0, done.stderr
    service = f"{stack}_test-export"
    deadline = time.monotonic() + 180
    while len(task_urls(docker_engine, service)) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    urls = task_urls(docker_engine, service)
    assert len(urls) == 2, docker_cli("service", "ps", "--no-trunc", service).stdout
    attrs = docker_engine.services.get(service).attrs["Spec"]
    assert attrs["EndpointSpec"]["Mode"] == "dnsrr" and attrs["Mode"]["Replicated"]["Replicas"] == 2
    assert attrs["UpdateConfig"]["Order"] == "start-first" and attrs["UpdateConfig"]["FailureAction"] == "rollback"
    assert attrs["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0] == "CMD"
    for url in urls:
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "READY"
        reply = httpx.post(f"{url}/predict", json={"inputs": ["hi"]}, timeout=30)
        assert reply.status_code == 200 and reply.json()["outputs"][0]["label"] == "short"
