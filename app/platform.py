"""The platform's composition root: one object wiring the database, secrets, settings and users.

Pages get it through `st.cache_resource`; the command line builds one per invocation; tests
build one over a temporary home and database.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import db
from app.auth import AuthService
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.crypto import KEY_FILE, SecretBox, load_secret_box, write_key_file
from app.db import transaction

from orchestration.supervisord import SupervisorDaemon

if TYPE_CHECKING:
    from app.catalog import Catalog
    from app.codestore.base import CodeStore
    from app.history import History
    from app.invoke import Invoker
    from app.showcase import Showcase
    from app.storage import ObjectStore
    from orchestration.builder import BuildOptions
    from orchestration.deployer import Deployer
    from orchestration.manager import ServiceManager
    from orchestration.ports import PortAllocator
    from orchestration.runtime import Runtime
from app.models import GiteaConfig
from app.service_config import ServiceConfigStore
from app.settings import SettingsStore


def resolve_home(environ: Mapping[str, str] = os.environ) -> Path:
    """`$ALGOSTAGE_HOME`, default `./var`, as an absolute path."""
    return Path(environ.get("ALGOSTAGE_HOME") or "./var").resolve()


@dataclass
class Platform:
    home: Path
    engine: Engine
    secrets: SecretBox
    environ: Mapping[str, str]

    @classmethod
    def open(cls, home: Path | None = None, environ: Mapping[str, str] | None = None,
             *, migrate: bool = True) -> Platform:
        """Open (and by default create and migrate) the platform state under `home`."""
        environ = dict(os.environ if environ is None else environ)
        home = home or resolve_home(environ)
        home.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(db.normalise_url(environ.get("DATABASE_URL"), home))
        if migrate:
            db.migrate(engine)
        return cls(home, engine, load_secret_box(home, environ), environ)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return db.session_factory(self.engine)

    @cached_property
    def settings(self) -> SettingsStore:
        return SettingsStore(self.sessions, self.secrets, self.environ)

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(self.sessions)

    @cached_property
    def service_configs(self) -> ServiceConfigStore:
        return ServiceConfigStore(self.sessions)

    @cached_property
    def codestore(self) -> CodeStore:
        return self.build_codestore()

    def build_codestore(self) -> CodeStore:
        """Gitea when GITEA_URL is set, else bare repositories under `$ALGOSTAGE_HOME/repos`; built
        from the current settings (the Settings page tests a changed configuration with it)."""
        from app.codestore.gitea import GiteaClient, GiteaCodeStore
        from app.codestore.local import LocalCodeStore
        url = self.settings.value("GITEA_URL")
        if not url:
            return LocalCodeStore(self.home / "repos")
        client = GiteaClient(url, self.settings.value("GITEA_TOKEN"))
        return GiteaCodeStore(client, self.settings.value("GITEA_OWNER"), self.settings.value("GITEA_REPO_PREFIX"),
                              cache_dir=self.home / "gitea-cache")

    @cached_property
    def catalog(self) -> Catalog:
        from app.archive import ArchiveLimits
        from app.catalog import Catalog
        limits = ArchiveLimits(max_total_bytes=self.settings.value("ALGOSTAGE_MAX_UPLOAD_MB") * 1024 * 1024)
        return Catalog(self.sessions, self.codestore, self.home / "tmp", limits)

    @cached_property
    def daemon(self) -> SupervisorDaemon:
        return SupervisorDaemon(self.home)

    @cached_property
    def runtimes(self) -> dict[str, Runtime]:
        """The runtime backends by name. Docker is created lazily: an unreachable engine is
        reported when it is used, and the supervisor runtime keeps working."""
        from orchestration.supervisor import SupervisorRuntime
        log = {"log_max_mb": self.settings.value("ALGOSTAGE_LOG_MAX_MB"),
               "log_backups": self.settings.value("ALGOSTAGE_LOG_BACKUPS")}
        runtimes: dict[str, Runtime] = {"supervisor": SupervisorRuntime(self.daemon, **log)}
        docker = self._docker_runtime()
        if docker is not None:
            runtimes["docker"] = docker
        return runtimes

    def _docker_runtime(self) -> Runtime | None:
        try:
            from orchestration.docker import docker_runtime
        except ImportError:
            return None
        return docker_runtime(self.settings.value("DOCKER_HOST"), self.settings.value("ALGOSTAGE_DOCKER_BASE_IMAGE"),
                              self.build_options)

    @cached_property
    def build_options(self) -> BuildOptions:
        from orchestration.builder import BuildOptions
        return BuildOptions(self.settings.value("ALGOSTAGE_PIP_INDEX_URL"), self.settings.value("ALGOSTAGE_PIP_PROXY"),
                            self.settings.value("ALGOSTAGE_PIP_CA_BUNDLE"))

    @cached_property
    def ports(self) -> PortAllocator:
        from orchestration.ports import PortAllocator
        return PortAllocator(self.sessions, lambda: self.settings.value("ALGOSTAGE_PORT_RANGE"))

    @cached_property
    def deployer(self) -> Deployer:
        from orchestration.builder import EnvironmentBuilder
        from orchestration.deployer import Deployer
        env_dir = self.settings.value("ALGOSTAGE_ENV_DIR")
        builder = EnvironmentBuilder(Path(env_dir) if env_dir else self.home / "envs", options=self.build_options)
        return Deployer(self.sessions, self.codestore, self.runtimes, builder, self.ports, self.home,
                        default_runtime=lambda: self.settings.value("ALGOSTAGE_RUNTIME"))

    @cached_property
    def services(self) -> ServiceManager:
        from orchestration.manager import ServiceManager
        return ServiceManager(self.sessions, self.runtimes, self.ports)

    @cached_property
    def invoker(self) -> Invoker:
        from app.invoke import Invoker
        return Invoker(self.sessions, self.service_configs)

    @cached_property
    def objects(self) -> ObjectStore:
        """MinIO/S3 when MINIO_ENDPOINT is set, else a directory under `$ALGOSTAGE_HOME/objects`."""
        from app.storage import LocalObjectStore, minio_store
        endpoint = self.settings.value("MINIO_ENDPOINT")
        if not endpoint:
            return LocalObjectStore(self.home / "objects")
        return minio_store(endpoint, self.settings.value("MINIO_ACCESS_KEY"), self.settings.value("MINIO_SECRET_KEY"),
                           self.settings.value("MINIO_SECURE"))

    @cached_property
    def showcase(self) -> Showcase:
        """Runs, comparisons, the result cache and scenarios; uploads limited by ALGOSTAGE_MAX_UPLOAD_MB."""
        from app.showcase import Limits, Showcase
        limits = Limits(max_upload_bytes=self.settings.value("ALGOSTAGE_MAX_UPLOAD_MB") * 1024 * 1024)
        return Showcase(self.sessions, self.invoker, self.objects, self.services, workdir=self.home / "tmp",
                        limits=limits)

    @cached_property
    def history(self) -> History:
        from app.history import History
        return History(self.sessions)

    def rotate_secret_key(self) -> int:
        """Put a new key in front of the key file and re-encrypt every stored secret with it.
        Returns how many secrets were re-encrypted. Keys from the environment are rotated by
        the operator (prepend a new key to ALGOSTAGE_SECRET_KEY, then call this)."""
        env_keys = self.environ.get("ALGOSTAGE_SECRET_KEY")
        new_box = self.secrets if env_keys else SecretBox([Fernet.generate_key()] + self.secrets.keys)
        count = self.settings.rotate_secrets(new_box)
        with transaction(self.sessions) as s:
            for cfg in s.scalars(select(GiteaConfig)):
                cfg.token_encrypted = new_box.encrypt(self.secrets.decrypt(cfg.token_encrypted))
                count += 1
        if not env_keys:
            write_key_file(self.home / KEY_FILE, new_box.keys)
        self.secrets = new_box
        return count

    def close(self) -> None:
        self.engine.dispose()
