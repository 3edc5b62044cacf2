"""What the Home page shows: the real state of the platform's parts and a few counts."""
from __future__ import annotations

from dataclasses import dataclass

from app import db
from app.launcher import counts
from app.platform import Platform
from orchestration.supervisord import SupervisorDaemon


@dataclass(frozen=True)
class Reachability:
    name: str
    reachable: bool
    detail: str


@dataclass(frozen=True)
class Overview:
    database: str
    schema_revision: str | None
    schema_head: str
    code_store: str      # local | gitea
    object_store: str    # local | minio
    runtimes: list[Reachability]
    counts: dict[str, int]


def docker_reachability(docker_host: str, timeout: float = 2.0) -> Reachability:
    """Ping the container engine; an unreachable engine is a result, not an exception."""
    import docker  # imported here: only this check needs it on the Home page
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout) if docker_host \
            else docker.from_env(timeout=timeout)
        version = client.version().get("Version", "?")
        client.close()
        return Reachability("docker", True, f"engine {version}")
    except Exception as e:  # noqa: BLE001 - any failure means "unreachable", shown with its reason
        return Reachability("docker", False, str(e).splitlines()[0][:200])


def supervisor_reachability(platform: Platform) -> Reachability:
    daemon = SupervisorDaemon(platform.home)
    if daemon.is_running():
        return Reachability("supervisor", True, f"supervisord pid {daemon.pid()}")
    return Reachability("supervisor", False, f"supervisord of {platform.home} is not running")


def overview(platform: Platform) -> Overview:
    settings = platform.settings
    return Overview(
        database=db.backend_name(platform.engine),
        schema_revision=db.schema_revision(platform.engine),
        schema_head=db.head_revision(),
        code_store="gitea" if settings.value("GITEA_URL") else "local",
        object_store="minio" if settings.value("MINIO_ENDPOINT") else "local",
        runtimes=[supervisor_reachability(platform), docker_reachability(settings.value("DOCKER_HOST"))],
        counts=counts(platform),
    )
