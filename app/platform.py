"""The platform's composition root: one object wiring the database, secrets, settings and users.

Pages get it through `st.cache_resource`; the command line builds one per invocation; tests
build one over a temporary home and database.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import db
from app.auth import Action, Actor, AuthService, internal, require
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.crypto import KEY_FILE, SecretBox, load_secret_box, write_key_file
from app.db import transaction

from orchestration.supervisord import SupervisorDaemon

if TYPE_CHECKING:
    from app.catalog.catalog import Catalog
    from app.catalog.codestore.base import CodeStore
    from app.history import History
    from app.invoke import Invoker
    from app.jobs import Jobs
    from app.experiments.datasets import Datasets
    from app.experiments.sweeps import Experiments
    from app.showcase.showcase import Showcase
    from app.storage import ObjectStore
    from app.catalog.pushes import Pushes
    from app.keys import ApiKeys
    from app.services.gateway import GatewaySettings, GatewayTable
    from app.services.gateway_log import Traffic
    from app.services.monitor import HealthMonitor
    from app.services.routing import Router
    from orchestration.nginx import NginxGateway
    from app.services.deployer import Deployer
    from app.services.cluster import Cluster
    from app.services.export import Exporter
    from app.services.manager import ServiceManager
    from app.services.ports import PortAllocator
    from app.shared import SharedState
    from orchestration.runtime import Runtime
from app.models import AlgorithmRepository, GiteaConfig
from app.services.config import ServiceConfigStore
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
    def shared(self) -> SharedState:
        """State the platform's processes share: Redis when REDIS_URL is set, else embedded."""
        from app.shared import open_shared
        return open_shared(self.settings.value("REDIS_URL"), str(self.engine.url))

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(self.sessions, throttle=self.shared.throttle(self.sessions))

    @cached_property
    def service_configs(self) -> ServiceConfigStore:
        return ServiceConfigStore(self.sessions)

    @cached_property
    def codestore(self) -> CodeStore:
        return self.build_codestore()

    def test_codestore(self, actor: Actor) -> str:
        """Connect to the code store the current settings describe (Gitea, or the local folder) and
        say what was found; CodeStoreError says why it failed."""
        require(actor, Action.MANAGE_SETTINGS)
        return self.build_codestore().test_connection()

    @internal("builds a client from the current settings for the platform's own wiring")
    def build_codestore(self) -> CodeStore:
        """Gitea when GITEA_URL is set, else bare repositories under `$ALGOSTAGE_HOME/repos`; built
        from the current settings (the Settings page tests a changed configuration with it)."""
        from app.catalog.codestore.gitea import GiteaClient, GiteaCodeStore
        from app.catalog.codestore.local import LocalCodeStore
        url = self.settings.value("GITEA_URL")
        if not url:
            return LocalCodeStore(self.home / "repos")
        client = GiteaClient(url, self.settings.value("GITEA_TOKEN"))
        return GiteaCodeStore(client, self.settings.value("GITEA_OWNER"), self.settings.value("GITEA_REPO_PREFIX"),
                              cache_dir=self.home / "gitea-cache")

    @cached_property
    def catalog(self) -> Catalog:
        from app.catalog.archive import ArchiveLimits
        from app.catalog.catalog import Catalog
        limits = ArchiveLimits(max_total_bytes=self.settings.value("ALGOSTAGE_MAX_UPLOAD_MB") * 1024 * 1024)
        return Catalog(self.sessions, self.codestore, self.home / "tmp", limits, incoming=self.home / "incoming")

    @cached_property
    def pushes(self) -> Pushes:
        """Push to deploy: git pushes over HTTP and signed webhooks become versions (and deploys)."""
        from app.catalog.pushes import Pushes
        from app.services.deployer import DeployRequest

        def deploy(actor: Actor, name: str, say: Callable[[str], None]) -> object:
            return self.deployer.deploy(actor, DeployRequest(name), lambda e: say(f"[{e.phase}] {e.message}"))
        return Pushes(self.sessions, self.catalog, deploy, lambda: self.secrets)

    @cached_property
    def daemon(self) -> SupervisorDaemon:
        return SupervisorDaemon(self.home)

    @cached_property
    def runtimes(self) -> Mapping[str, Runtime]:
        """Every registered runtime backend by name (orchestration.registry), each built on first
        use: an unreachable engine is reported when it is used, and the others keep working."""
        from orchestration.registry import RuntimeContext, Runtimes
        return Runtimes(RuntimeContext(self.home, self.settings.value))

    @cached_property
    def ports(self) -> PortAllocator:
        from app.services.ports import PortAllocator
        return PortAllocator(self.sessions, lambda: self.settings.value("ALGOSTAGE_PORT_RANGE"))

    @cached_property
    def router(self) -> Router:
        """Where calls to a service go. The platform's own calls go straight to the replicas in
        rotation; every change of the routing table is also rendered into the nginx gateway."""
        from app.services.gateway import GatewayRouter
        from app.services.routing import DirectRouter, RoutingTable
        return GatewayRouter(DirectRouter(RoutingTable(self.sessions)), self.gateway_table, self.gateway_engine,
                             self.gateway_settings, self.home / "locks")

    @cached_property
    def gateway_engine(self) -> NginxGateway:
        from orchestration.nginx import NginxGateway
        return NginxGateway(self.home / "gateway")

    @cached_property
    def gateway_table(self) -> GatewayTable:
        from app.services.gateway import GatewayTable
        return GatewayTable(self.sessions, self.service_configs.values)

    @internal("the gateway's settings, read when its configuration is rendered")
    def gateway_settings(self) -> GatewaySettings:
        from app.agent import socket_path
        from app.services.gateway import GatewaySettings
        value = self.settings.value
        api_host = value("ALGOSTAGE_API_HOST")
        api_host = "127.0.0.1" if api_host in ("0.0.0.0", "") else api_host
        return GatewaySettings(value("ALGOSTAGE_GATEWAY_HOST"), value("ALGOSTAGE_GATEWAY_PORT"),
                               value("ALGOSTAGE_GATEWAY_AUTH") == "keys", f"unix:{socket_path(self.home)}",
                               value("ALGOSTAGE_GATEWAY_RATE"), value("ALGOSTAGE_GATEWAY_BURST"),
                               f"{api_host}:{value('ALGOSTAGE_API_PORT')}", value("ALGOSTAGE_MAX_UPLOAD_MB"))

    @cached_property
    def health_monitor(self) -> HealthMonitor:
        from app.services.monitor import HealthMonitor
        return HealthMonitor(self.sessions, self.router, timeout_s=self.settings.value("ALGOSTAGE_HEALTH_TIMEOUT_S"),
                             board=self.shared.health, locate=self.cluster.locate)

    @cached_property
    def traffic(self) -> Traffic:
        """Recent calls through the gateway, from its access log."""
        from app.services.gateway_log import Traffic
        return Traffic(self.sessions, self.gateway_engine.access_log)

    @cached_property
    def keys(self) -> ApiKeys:
        from app.keys import ApiKeys
        return ApiKeys(self.sessions)

    @cached_property
    def deployer(self) -> Deployer:
        from app.services.deployer import Deployer
        return Deployer(self.sessions, self.codestore, self.runtimes, self.ports, self.router, self.service_configs,
                        self.home, default_runtime=lambda: self.settings.value("ALGOSTAGE_RUNTIME"))

    @cached_property
    def exporter(self) -> Exporter:
        """Compose and Kubernetes exports of deployed services (DESIGN §11)."""
        from app.services.export import Exporter
        return Exporter(self.sessions, self.service_configs.values, self.deployer.export,
                        lambda: self.settings.value("ALGOSTAGE_SWARM_REGISTRY"))

    @cached_property
    def cluster(self) -> Cluster:
        """The cluster runtime's nodes (DESIGN §11)."""
        from app.services.cluster import Cluster
        return Cluster(self.runtimes)

    @cached_property
    def services(self) -> ServiceManager:
        from app.services.manager import ServiceManager
        return ServiceManager(self.sessions, self.runtimes, self.ports, self.router,
                              ready_timeout=lambda name: self.service_configs.values(name)["health_timeout_s"],
                              board=self.shared.health)

    @cached_property
    def invoker(self) -> Invoker:
        from app.invoke import Invoker
        return Invoker(self.sessions, self.service_configs, self.router)

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
        """Inputs, runs with the result cache, comparisons, scenarios and video runs (as jobs);
        uploads limited by ALGOSTAGE_MAX_UPLOAD_MB."""
        from app.showcase.inputs import Limits
        from app.showcase.showcase import Showcase
        limits = Limits(max_upload_bytes=self.settings.value("ALGOSTAGE_MAX_UPLOAD_MB") * 1024 * 1024)
        return Showcase(self.sessions, self.invoker, self.objects, self.services, self.jobs,
                        workdir=self.home / "tmp", limits=limits, results=self.shared.results)

    @cached_property
    def datasets(self) -> Datasets:
        """Labelled datasets in the object store (uploads limited by ALGOSTAGE_MAX_UPLOAD_MB)."""
        from app.catalog.archive import ArchiveLimits
        from app.experiments.datasets import Datasets
        limits = ArchiveLimits(max_total_bytes=self.settings.value("ALGOSTAGE_MAX_UPLOAD_MB") * 1024 * 1024)
        return Datasets(self.sessions, self.objects, self.home / "tmp", limits)

    @cached_property
    def experiments(self) -> Experiments:
        """Parameter sweeps over datasets, run as jobs through the invoker; limits from the settings."""
        from app.experiments.runner import SweepLimits
        from app.experiments.sweeps import Experiments
        value = self.settings.value

        def limits() -> SweepLimits:
            return SweepLimits(value("ALGOSTAGE_SWEEP_CONFIRM_CALLS"), value("ALGOSTAGE_SWEEP_MAX_CONFIGS"),
                               value("ALGOSTAGE_SWEEP_INFLIGHT"), value("ALGOSTAGE_SWEEP_RECORD_EVERY"))
        def store_input(actor: Actor, data: str | bytes, filename: str) -> str:
            added = self.showcase.add_text(actor, data) if isinstance(data, str) else \
                self.showcase.add_media(actor, filename, data)
            return str(added.ref)
        return Experiments(self.sessions, self.invoker, self.datasets, self.jobs, self.router, limits,
                           store_input=store_input)

    @cached_property
    def jobs(self) -> Jobs:
        """Background work of this process, known by id: video runs and comparisons."""
        from app.jobs import Jobs
        return Jobs()

    @cached_property
    def history(self) -> History:
        from app.history import History
        return History(self.sessions, self.objects)

    def rotate_secret_key(self, actor: Actor) -> int:
        """Put a new key in front of the key file and re-encrypt every stored secret with it.
        Returns how many secrets were re-encrypted. Keys from the environment are rotated by
        the operator (prepend a new key to ALGOSTAGE_SECRET_KEY, then call this)."""
        require(actor, Action.MANAGE_SETTINGS)
        env_keys = self.environ.get("ALGOSTAGE_SECRET_KEY")
        new_box = self.secrets if env_keys else SecretBox([Fernet.generate_key()] + self.secrets.keys)
        count = self.settings.rotate_secrets(new_box)
        with transaction(self.sessions) as s:
            for cfg in s.scalars(select(GiteaConfig)):
                cfg.token_encrypted = new_box.encrypt(self.secrets.decrypt(cfg.token_encrypted))
                count += 1
            for repo in s.scalars(select(AlgorithmRepository).where(AlgorithmRepository.webhook_secret_encrypted.is_not(None))):
                repo.webhook_secret_encrypted = new_box.encrypt(self.secrets.decrypt(repo.webhook_secret_encrypted))
                count += 1
        if not env_keys:
            write_key_file(self.home / KEY_FILE, new_box.keys)
        self.secrets = new_box
        return count

    @internal("closes this process's connections; protects nothing")
    def close(self) -> None:
        self.engine.dispose()
