"""Engines shared by the integration tests, behind the Docker API (fixtures registered for
tests/integration by its conftest.py):

- `engine`: Podman's Docker-compatible service, `ALGOSTAGE_TEST_DOCKER_HOST` (default
  unix:///run/algostage-podman.sock), set up by scripts/container-engine.sh;
- `docker_engine`: Docker Engine (Debian's docker.io), a single-node swarm manager with the local
  registry, `ALGOSTAGE_TEST_DOCKERD_HOST` (default unix:///run/algostage-docker.sock), set up by
  scripts/docker-engine.sh --swarm.

When an engine does not answer, the session runs its script (root) once; if it still does not
answer the tests FAIL — they are never skipped. Containers `algo-test-*` and images
`algostage/test-*` are removed at the start and the end of the session.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOST = "unix:///run/algostage-podman.sock"
DOCKER_HOST = os.environ.get("ALGOSTAGE_TEST_DOCKER_HOST", DEFAULT_HOST)
DEFAULT_DOCKERD_HOST = "unix:///run/algostage-docker.sock"
DOCKERD_HOST = os.environ.get("ALGOSTAGE_TEST_DOCKERD_HOST", DEFAULT_DOCKERD_HOST)
REGISTRY = os.environ.get("ALGOSTAGE_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("ALGOSTAGE_DOCKER_BASE_IMAGE", "algostage/base:bookworm")
TIMINGS: dict[str, float] = {}


# --- engine --------------------------------------------------------------------------------------

def connect(host: str = DOCKER_HOST) -> tuple[docker.DockerClient | None, str]:
    try:
        client = docker.DockerClient(base_url=host, timeout=120)
        client.ping()
        return client, ""
    except (docker.errors.DockerException, OSError) as e:
        return None, str(e)


def has_image(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def start_engine(script: str = "container-engine.sh", *args: str) -> str:
    """Run an engine's setup script (scripts/container-engine.sh: Podman's service;
    scripts/docker-engine.sh --swarm: Docker Engine, swarm, registry), which also makes the base image."""
    if os.geteuid() != 0:
        return f"scripts/{script} needs root; run it once as root"
    t0 = time.perf_counter()
    done = subprocess.run(["bash", str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=1500, env={**os.environ, "ALGOSTAGE_DOCKER_BASE_IMAGE": BASE_IMAGE})
    TIMINGS[f"engine setup ({script})"] = time.perf_counter() - t0
    return f"{script} exited {done.returncode}: {done.stderr[-2000:]}"


def dangling(client: docker.DockerClient) -> set[str]:
    return {image.id for image in client.images.list(filters={"dangling": True})}


def clean(client: docker.DockerClient, keep_dangling: set[str] | None = None) -> None:
    """Remove containers algo-test-*, images algostage/test-*, and (at the end) the untagged
    images this session's failed builds left, i.e. dangling images not in `keep_dangling`."""
    for c in client.containers.list(all=True):
        if c.name.startswith("algo-test-") and "com.docker.swarm.task.id" not in c.labels:  # tasks: the swarm's
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass   # gone meanwhile
    for image in client.images.list():
        if any("algostage/test-" in tag for tag in image.tags):
            for tag in image.tags:
                _remove_image(client, tag)
    if keep_dangling is not None:
        for image_id in dangling(client) - keep_dangling:
            _remove_image(client, image_id)


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    """Remove an image; one a container still runs (a swarm task on its way out: the swarm removes
    tasks after their service) or that is gone already is left to the next clean."""
    try:
        client.images.remove(ref, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise


def usable(host: str, default: str, script: str, *args: str) -> docker.DockerClient:
    """A client of the engine at `host`, set up by `script` when it is the default one and does
    not answer; the test FAILS when it is still not usable."""
    client, error = connect(host)
    if client is None or not has_image(client, BASE_IMAGE):
        if host != default:
            pytest.fail(f"container engine at {host} is not reachable or lacks {BASE_IMAGE}: {error}")
        why = start_engine(script, *args)
        client, error = connect(host)
        if client is None or not has_image(client, BASE_IMAGE):
            pytest.fail(f"container engine at {host} is required and not usable ({error}); {why}")
    return client


def swarm_active(client: docker.DockerClient) -> bool:
    return client.info().get("Swarm", {}).get("LocalNodeState") == "active"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """Docker Engine, a swarm manager with the local registry at REGISTRY."""
    client = usable(DOCKERD_HOST, DEFAULT_DOCKERD_HOST, "docker-engine.sh", "--swarm")
    if not swarm_active(client) and DOCKERD_HOST == DEFAULT_DOCKERD_HOST:
        start_engine("docker-engine.sh", "--swarm")
    if not swarm_active(client):
        pytest.fail(f"Docker Engine at {DOCKERD_HOST} is not a swarm manager (scripts/docker-engine.sh --swarm)")
    clean(client)
    before = dangling(client)
    yield client
    clean(client, before)
    client.close()


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """Podman's Docker-compatible service."""
    client = usable(DOCKER_HOST, DEFAULT_HOST, "container-engine.sh")
    clean(client)
    before = dangling(client)
    yield client
    clean(client, before)
    client.close()
    if TIMINGS:
        print("\ndocker runtime timings: " + ", ".join(f"{k}: {v:.1f} s" for k, v in TIMINGS.items()))
