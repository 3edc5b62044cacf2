"""The runtime registry: every backend by name, with the settings it reads.

Adding a backend (Kubernetes, say) is one new module with a `create(ctx) -> Runtime` function
plus one entry here. Everything else (the settings list and the `ALGOSTAGE_RUNTIME` choices,
the Deploy page, the CLI's `--runtime`, the Home page's engine checks) reads this table.
A backend's module is imported only when the backend is built, so an engine whose SDK is slow
to import or missing costs nothing until it is used.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.config import SettingSpec, parse_int_in, parse_text, parse_url
from orchestration.runtime import Runtime


@dataclass(frozen=True)
class RuntimeContext:
    """What every backend may use to build itself: the platform's home and its resolved settings."""
    home: Path
    setting: Callable[[str], Any]


@dataclass(frozen=True)
class Backend:
    name: str
    factory: str                       # "module:function" taking a RuntimeContext
    description: str
    settings: tuple[SettingSpec, ...] = ()


DOCKER_HOST = SettingSpec("DOCKER_HOST", parse_url("unix", "tcp", "ssh", "http", "https"), "",
                          "container engine; the docker SDK's default when empty", group="services")

BACKENDS: dict[str, Backend] = {b.name: b for b in [
    Backend("supervisor", "orchestration.supervisor:create", "processes under the platform's own supervisord", (
        SettingSpec("ALGOSTAGE_LOG_MAX_MB", parse_int_in(1, 1024), "10", "size of a service log before rotation",
                    group="services"),
        SettingSpec("ALGOSTAGE_LOG_BACKUPS", parse_int_in(0, 100), "5", "rotated service logs kept",
                    group="services"),
        SettingSpec("ALGOSTAGE_ENV_DIR", parse_text(500), "", "where environments are built and shared; "
                    "`$ALGOSTAGE_HOME/envs` when empty", env_only=True),
    )),
    Backend("docker", "orchestration.docker:create", "containers through the Docker API (Docker Engine, Podman)", (
        DOCKER_HOST,
        SettingSpec("ALGOSTAGE_DOCKER_BASE_IMAGE", parse_text(300), "algostage/base:bookworm",
                    "base image of generated Dockerfiles", group="build"),
    )),
    Backend("swarm", "orchestration.swarm:create",
            "Docker Swarm services on a Docker Engine cluster (images built on DOCKER_HOST, pushed to "
            "ALGOSTAGE_SWARM_REGISTRY)", (
                DOCKER_HOST,
                SettingSpec("ALGOSTAGE_SWARM_HOST", parse_url("unix", "tcp", "ssh", "http", "https"), "",
                            "the swarm manager's Docker API; DOCKER_HOST when empty", group="cluster"),
                SettingSpec("ALGOSTAGE_SWARM_NETWORK", parse_text(60, r"[A-Za-z0-9_.\-]+"), "algostage",
                            "overlay network the platform creates; the swarm services' tasks join it", group="cluster"),
            )),
]}
DEFAULT = "supervisor"


def names() -> list[str]:
    return list(BACKENDS)


def settings() -> list[SettingSpec]:
    """Every setting a backend declares, once per key (backends may share one, e.g. DOCKER_HOST)."""
    seen: dict[str, SettingSpec] = {}
    for backend in BACKENDS.values():
        for spec in backend.settings:
            seen.setdefault(spec.key, spec)
    return list(seen.values())


def create(name: str, ctx: RuntimeContext) -> Runtime:
    """The backend `name` built for `ctx`; KeyError for a name not in the registry."""
    module, _, function = BACKENDS[name].factory.partition(":")
    return getattr(importlib.import_module(module), function)(ctx)


class Runtimes(Mapping[str, Runtime]):
    """Every registered backend by name, each built on first use and then kept."""

    def __init__(self, ctx: RuntimeContext) -> None:
        self._ctx = ctx
        self._built: dict[str, Runtime] = {}

    def __getitem__(self, name: str) -> Runtime:
        if name not in self._built:
            self._built[name] = create(name, self._ctx)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(BACKENDS)

    def __len__(self) -> int:
        return len(BACKENDS)
