"""SQLAlchemy 2.0 typed models. The schema changes only through Alembic migrations.

Tables of the original plan (algorithms, algorithm_versions, roles, users, algorithm_calls,
gitea_configs, algorithm_repositories, service_groups, algorithm_services, service_configs)
plus what the features need: settings and their history, login throttling, replicas, port
reservations, deployments and per-service configuration history.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false as sa_false,
    true as sa_true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from orchestration.errors import restored

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


# --- users and roles -------------------------------------------------------------------------

class Role(Base):
    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    users: Mapped[list[User]] = relationship(back_populates="role")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    role: Mapped[Role] = relationship(back_populates="users", lazy="joined")


class LoginFailure(Base):
    """Consecutive failed logins per attempted name (existing or not), for throttling."""
    __tablename__ = "login_failures"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class BrowserSession(Base):
    """A signed-in browser. Only SHA-256 digests are stored: of the one-time ticket the page hands
    the browser at login (cleared when claimed), and of the cookie's token the claim creates."""
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User] = relationship()


class AuditEntry(Base):
    """Who did what to which service or user (settings and deploys have histories of their own)."""
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))      # start | stop | restart | remove | user.create | …
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- settings ----------------------------------------------------------------------------------

class Setting(Base):
    """Database layer of the settings; secret values are stored encrypted."""
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SettingHistory(Base):
    """One row per change of a database setting; None means "not set in the database"."""
    __tablename__ = "setting_history"
    __table_args__ = (Index("ix_setting_history_key_at", "key", "changed_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- code ----------------------------------------------------------------------------------------

class GiteaConfig(Base):
    __tablename__ = "gitea_configs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base_url: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(100))
    repo_prefix: Mapped[str] = mapped_column(String(60), default="")
    token_encrypted: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Algorithm(Base):
    __tablename__ = "algorithms"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    task: Mapped[str] = mapped_column(String(40), index=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    versions: Mapped[list[AlgorithmVersion]] = relationship(
        back_populates="algorithm", order_by="AlgorithmVersion.number", cascade="all, delete-orphan")
    repository: Mapped[AlgorithmRepository | None] = relationship(
        back_populates="algorithm", cascade="all, delete-orphan")


class AlgorithmRepository(Base):
    __tablename__ = "algorithm_repositories"
    id: Mapped[int] = mapped_column(primary_key=True)
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("algorithms.id", ondelete="CASCADE"), unique=True)
    backend: Mapped[str] = mapped_column(String(16))  # local | gitea
    location: Mapped[str] = mapped_column(String(500))
    gitea_config_id: Mapped[int | None] = mapped_column(ForeignKey("gitea_configs.id", ondelete="SET NULL"))
    upstream_url: Mapped[str] = mapped_column(String(500), default="", server_default="")   # a webhook's repository
    deploy_branch: Mapped[str] = mapped_column(String(100), default="main", server_default="main")
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    auto_deploy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    algorithm: Mapped[Algorithm] = relationship(back_populates="repository")


class PushEvent(Base):
    """A push (git over HTTP) or a webhook: what came, what became of it, and why."""
    __tablename__ = "push_events"
    __table_args__ = (Index("ix_push_events_algorithm_at", "algorithm_name", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    algorithm_name: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))        # push | gitea | github
    ref: Mapped[str] = mapped_column(String(200))
    commit_sha: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))        # rejected | version | deployed | deploy_failed
    reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlgorithmVersion(Base):
    __tablename__ = "algorithm_versions"
    __table_args__ = (UniqueConstraint("algorithm_id", "number", name="uq_algorithm_versions_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("algorithms.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(40))
    commit_sha: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    files: Mapped[list[Any]] = mapped_column(JSON)
    requirements_hash: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    algorithm: Mapped[Algorithm] = relationship(back_populates="versions")


# --- services ----------------------------------------------------------------------------------

class ServiceGroup(Base):
    __tablename__ = "service_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    services: Mapped[list[AlgorithmService]] = relationship(back_populates="group")


class AlgorithmService(Base):
    """A deployed algorithm: what should run (desired state) and which version serves."""
    __tablename__ = "algorithm_services"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("algorithms.id", ondelete="RESTRICT"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_versions.id", ondelete="SET NULL"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("service_groups.id", ondelete="SET NULL"), index=True)
    runtime: Mapped[str] = mapped_column(String(16))
    desired_state: Mapped[str] = mapped_column(String(16), default="running")
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)   # last_error as stored() keeps it
    canary_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("algorithm_versions.id", ondelete="SET NULL"), default=None)   # a version on trial
    canary_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # its share of the calls
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    group: Mapped[ServiceGroup | None] = relationship(back_populates="services")
    algorithm: Mapped[Algorithm] = relationship()
    version: Mapped[AlgorithmVersion | None] = relationship(foreign_keys=[version_id])
    canary_version: Mapped[AlgorithmVersion | None] = relationship(foreign_keys=[canary_version_id])
    replica_rows: Mapped[list[ServiceReplica]] = relationship(
        back_populates="service", cascade="all, delete-orphan", order_by="ServiceReplica.index")
    configs: Mapped[list[ServiceConfig]] = relationship(back_populates="service", cascade="all, delete-orphan")


class ServiceReplica(Base):
    __tablename__ = "service_replicas"
    __table_args__ = (UniqueConstraint("backend_name", name="uq_service_replicas_backend_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("algorithm_services.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_versions.id", ondelete="SET NULL"))
    index: Mapped[int] = mapped_column(Integer)
    backend_name: Mapped[str] = mapped_column(String(120))  # supervisor program or container name
    port: Mapped[int] = mapped_column(Integer)               # reserved on the host (port_reservations)
    endpoint: Mapped[str] = mapped_column(String(200), default="", server_default="")  # base URL it answers on
    routed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())  # in rotation
    route_note: Mapped[str] = mapped_column(String(300), default="", server_default="")  # why in or out
    route_note_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)  # route_note as stored() keeps it
    checked_at: Mapped[datetime | None] = mapped_column(default=None)    # last active health probe
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    service: Mapped[AlgorithmService] = relationship(back_populates="replica_rows")
    version: Mapped[AlgorithmVersion | None] = relationship()   # the version it runs


class PortReservation(Base):
    """A port handed to a replica; the primary key is the unique constraint that prevents clashes."""
    __tablename__ = "port_reservations"
    port: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(120), index=True)
    reserved_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceConfig(Base):
    __tablename__ = "service_configs"
    __table_args__ = (UniqueConstraint("service_id", "key", name="uq_service_configs_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("algorithm_services.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    service: Mapped[AlgorithmService] = relationship(back_populates="configs")


class ServiceConfigHistory(Base):
    __tablename__ = "service_config_history"
    __table_args__ = (Index("ix_service_config_history_service_at", "service_name", "changed_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_name: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A key for the gateway (and the API): only its SHA-256 is stored; `services` None = every service."""
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))         # the key's first characters, to recognise it
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    services: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User | None] = relationship()


class Deployment(Base):
    """One deploy attempt: who, when, which version, runtime, the time of each phase, outcome."""
    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_service_started", "service_name", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_name: Mapped[str] = mapped_column(String(64))
    algorithm_id: Mapped[int] = mapped_column(ForeignKey("algorithms.id", ondelete="CASCADE"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_versions.id", ondelete="SET NULL"))
    runtime: Mapped[str] = mapped_column(String(16))
    replicas: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    failed_phase: Mapped[str] = mapped_column(String(32), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)   # error as stored() keeps it
    phases: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # phase -> seconds
    build_log: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def error_text(self) -> str:
        """`error`, a `Message` again (an interface says it in its language) when it was kept as one."""
        return restored(self.error_message, self.error)


# --- calls ---------------------------------------------------------------------------------------

class AlgorithmCall(Base):
    """Every call made through the platform, kept after its service is removed."""
    __tablename__ = "algorithm_calls"
    __table_args__ = (
        Index("ix_algorithm_calls_service_at", "service_name", "created_at"),
        Index("ix_algorithm_calls_user_at", "username", "created_at"),
        Index("ix_algorithm_calls_cache", "version_id", "params_hash", "input_hash"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_services.id", ondelete="SET NULL"))
    service_name: Mapped[str] = mapped_column(String(64))
    algorithm_id: Mapped[int | None] = mapped_column(ForeignKey("algorithms.id", ondelete="SET NULL"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_versions.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params_hash: Mapped[str] = mapped_column(String(64), default="")
    input_ref: Mapped[str] = mapped_column(String(500), default="")
    input_hash: Mapped[str] = mapped_column(String(64), default="")
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16))  # ok | error
    error: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)   # error as stored() keeps it
    total_ms: Mapped[float] = mapped_column(Float, default=0.0)
    predict_ms: Mapped[float | None] = mapped_column(Float, default=None)
    replica: Mapped[str] = mapped_column(String(120), default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- showcase ------------------------------------------------------------------------------------

class Scenario(Base):
    """A saved showcase comparison: input references and (service, params) columns, replayable.
    `spec` = {"inputs": ["bucket/key[#line]", …], "columns": [{"service", "params"}, …]}."""
    __tablename__ = "scenarios"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- experiments (issue 12) ------------------------------------------------------------------------

class Dataset(Base):
    """A labelled dataset: its files and index live in the object store under `prefix`; `labels`
    is its set of classes (classification), categories (detection) or entity types (NER)."""
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    task: Mapped[str] = mapped_column(String(40))
    items: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    prefix: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """A sweep of one algorithm version over one dataset. `space` is the parameter space asked for,
    `configs` the full parameter sets it expanded to (defaults filled in); `summary` holds the
    metrics per configuration once computed. `heartbeat_at` is refreshed while a process runs it:
    a RUNNING experiment whose heartbeat is old was interrupted and may be resumed."""
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_name: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("algorithm_versions.id", ondelete="SET NULL"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    dataset_name: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(40))
    space: Mapped[dict[str, Any]] = mapped_column(JSON)
    configs: Mapped[list[Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)   # error as stored() keeps it
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ExperimentItem(Base):
    """The result of one configuration on one dataset item: kept as soon as it is known, so a
    cancelled or interrupted sweep resumes without redoing it. `params_hash`/`input_hash` make it
    a result cache for later sweeps of the same version."""
    __tablename__ = "experiment_items"
    __table_args__ = (
        UniqueConstraint("experiment_id", "config", "item", name="uq_experiment_items_cell"),
        Index("ix_experiment_items_cache", "version_id", "params_hash", "input_hash"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    config: Mapped[int] = mapped_column(Integer)
    item: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int | None] = mapped_column(Integer, default=None)
    params_hash: Mapped[str] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ok | error
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)   # error as stored() keeps it
    total_ms: Mapped[float | None] = mapped_column(Float, default=None)
    predict_ms: Mapped[float | None] = mapped_column(Float, default=None)
    replica: Mapped[str] = mapped_column(String(120), default="")
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    started: Mapped[float | None] = mapped_column(Float, default=None)   # epoch seconds
    ended: Mapped[float | None] = mapped_column(Float, default=None)
