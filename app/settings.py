"""Layered settings: environment > database > defaults, each value knowing its source.

Every setting is declared once in `SPECS` with its type, default and validation. The
environment layer is read with pydantic-settings; the database layer lives in the `settings`
table, every change recorded in `setting_history` (who, when, old, new) so any earlier value
can be restored. Secret values are encrypted in the database and masked everywhere else.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import create_model
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, internal, require
from app.crypto import SecretBox, mask
from app.db import transaction
from app.errors import Message, Problem, ValidationFailed
from orchestration.errors import reason_of
from app.models import Setting, SettingHistory
from orchestration import registry
from orchestration.config import (SettingSpec, parse_bool, parse_choice, parse_existing_file, parse_float_in,
                                  parse_host_port, parse_int_in, parse_port_range, parse_size_mb, parse_text, parse_url)


class Source(StrEnum):
    ENV = "environment"
    DB = "database"
    DEFAULT = "default"


class SettingError(ValidationFailed):
    """A setting key or value was refused; `problems` name the field and the reason."""


PLATFORM_SPECS: list[SettingSpec] = [
    SettingSpec("ALGOSTAGE_HOME", parse_text(500), "./var", "all runtime state", env_only=True),
    SettingSpec("ALGOSTAGE_UI_PORT", parse_int_in(1, 65535), "8501", "Streamlit port"),
    SettingSpec("ALGOSTAGE_PORT_RANGE", parse_port_range, "18000-18999", "ports handed to service replicas",
                group="services"),
    SettingSpec("ALGOSTAGE_RUNTIME", parse_choice(*registry.names()), registry.DEFAULT,
                "default runtime for deploys", group="services"),
    SettingSpec("ALGOSTAGE_ADMIN_PASSWORD", parse_text(200), "", "password of the first admin",
                env_only=True, secret=True),
    SettingSpec("ALGOSTAGE_SECRET_KEY", parse_text(2000), "", "encrypts secrets in the database",
                env_only=True, secret=True),
    SettingSpec("DATABASE_URL", parse_text(500), "", "database URL; SQLite under ALGOSTAGE_HOME when empty",
                env_only=True, secret=True),
    SettingSpec("REDIS_URL", parse_text(500, r"(rediss?|unix)://\S+"), "",
                "Redis for the state UI and API processes share (login throttle, result cache, live health); "
                "embedded when empty", env_only=True, secret=True),
    SettingSpec("ALGOSTAGE_GATEWAY_PORT", parse_int_in(1, 65535), "8080", "port of the nginx gateway (/ai/<service>/…)",
                group="gateway"),
    SettingSpec("ALGOSTAGE_GATEWAY_HOST", parse_text(100, r"[A-Za-z0-9.\-:]+"), "127.0.0.1",
                "address the gateway listens on (0.0.0.0: every interface)", group="gateway"),
    SettingSpec("ALGOSTAGE_GATEWAY_AUTH", parse_choice("keys", "open"), "keys",
                "keys: every call through the gateway needs an API key; open: none does", group="gateway"),
    SettingSpec("ALGOSTAGE_GATEWAY_RATE", parse_int_in(0, 100_000), "200",
                "requests per second one API key may make through the gateway (0: no limit)", group="gateway"),
    SettingSpec("ALGOSTAGE_GATEWAY_BURST", parse_int_in(0, 100_000), "100",
                "requests over the rate a key may make at once before it gets 429", group="gateway"),
    SettingSpec("ALGOSTAGE_API_PORT", parse_int_in(1, 65535), "8001", "port of the management API (/api/v1)",
                group="api"),
    SettingSpec("ALGOSTAGE_API_HOST", parse_text(100, r"[A-Za-z0-9.\-:]+"), "127.0.0.1",
                "address the management API listens on (the gateway also routes /api/ to it)", group="api"),
    SettingSpec("ALGOSTAGE_HEALTH_INTERVAL_S", parse_float_in(0.2, 600), "2",
                "seconds between two active health checks of every replica", group="gateway"),
    SettingSpec("ALGOSTAGE_HEALTH_TIMEOUT_S", parse_float_in(0.1, 60), "1",
                "a replica whose /health does not answer within this is taken out of rotation", group="gateway"),
    SettingSpec("ALGOSTAGE_MAX_UPLOAD_MB", parse_size_mb, "200", "largest upload accepted", group="upload"),
    SettingSpec("ALGOSTAGE_ALLOW_REQUIREMENT_REDIRECTS", parse_bool, "false",
                "accept requirements that redirect installs (index URLs, -e, paths, URLs)", group="upload"),
    SettingSpec("ALGOSTAGE_PIP_INDEX_URL", parse_text(500), "", "package index for environments", group="build"),
    SettingSpec("ALGOSTAGE_PIP_PROXY", parse_text(500), "", "HTTP(S) proxy for package installs", group="build"),
    SettingSpec("ALGOSTAGE_PIP_CA_BUNDLE", parse_existing_file, "", "CA bundle for package installs",
                group="build"),
    SettingSpec("MINIO_ENDPOINT", parse_host_port, "", "object storage endpoint; local objects when empty",
                group="storage"),
    SettingSpec("MINIO_ACCESS_KEY", parse_text(200), "", "object storage access key", group="storage"),
    SettingSpec("MINIO_SECRET_KEY", parse_text(200), "", "object storage secret key", group="storage",
                secret=True),
    SettingSpec("MINIO_SECURE", parse_bool, "false", "use HTTPS for object storage", group="storage"),
    SettingSpec("GITEA_URL", parse_url("http", "https"), "", "Gitea server; local repositories when empty",
                group="code"),
    SettingSpec("GITEA_TOKEN", parse_text(200), "", "Gitea access token", group="code", secret=True),
    SettingSpec("GITEA_OWNER", parse_text(100, r"[A-Za-z0-9_.\-]+"), "", "Gitea user or organisation",
                group="code"),
    SettingSpec("GITEA_REPO_PREFIX", parse_text(60, r"[A-Za-z0-9_.\-]*"), "algo-", "prefix of repository names",
                group="code"),
    # experiments (issue 12): parameter sweeps over labelled datasets
    SettingSpec("ALGOSTAGE_SWEEP_CONFIRM_CALLS", parse_int_in(1, 10_000_000), "2000",
                "a sweep of more calls (configurations x items) asks for confirmation first", group="experiments"),
    SettingSpec("ALGOSTAGE_SWEEP_MAX_CONFIGS", parse_int_in(1, 10_000), "256",
                "most parameter configurations in one sweep", group="experiments"),
    SettingSpec("ALGOSTAGE_SWEEP_INFLIGHT", parse_int_in(1, 64), "2",
                "calls a sweep keeps in flight per replica in rotation", group="experiments"),
    SettingSpec("ALGOSTAGE_SWEEP_RECORD_EVERY", parse_int_in(1, 1_000_000), "50",
                "a sweep records one call in this many in the call history", group="experiments"),
    # cluster (issue 13): the registry the swarm runtime pushes images to and exports name them in
    SettingSpec("ALGOSTAGE_SWARM_REGISTRY", parse_host_port, "127.0.0.1:5000",
                "registry every node of the cluster pulls the platform's images from (host:port)", group="cluster"),
]
# The platform's settings, then those each runtime backend declares in its own module.
SPECS: dict[str, SettingSpec] = {s.key: s for s in [*PLATFORM_SPECS, *registry.settings()]}


class _EnvLayer(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")


EnvLayer = create_model("EnvLayer", __base__=_EnvLayer, **{k: (str | None, None) for k in SPECS})


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over an explicit mapping (os.environ by default)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(EnvLayer, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, True, True, None)


def read_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment layer: raw values of declared settings that are set and non-empty."""
    layer = EnvLayer.model_validate(_MappingEnvSource(environ)())
    return {k: v for k, v in layer.model_dump().items() if v is not None}


@dataclass(frozen=True)
class Resolved:
    key: str
    value: Any
    raw: str
    source: Source
    secret: bool
    error: str = ""

    @property
    def display(self) -> str:
        """What a page or log may show: secrets masked."""
        return mask(self.raw) if self.secret else self.raw


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    key: str
    old: str | None
    new: str | None
    actor: str
    changed_at: datetime


UNKNOWN_SETTING = Message("setting.unknown", "unknown setting")


def validate(key: str, raw: str) -> Any:
    """Parse `raw` for `key`; raises SettingError(field=key, reason) for unknown keys or bad values."""
    spec = SPECS.get(key)
    if spec is None:
        raise SettingError([Problem(key, UNKNOWN_SETTING)])
    if raw == "" and spec.default == "":
        return ""
    try:
        return spec.parse(raw)
    except ValueError as e:
        raise SettingError([Problem(key, reason_of(e))]) from None


class SettingsStore:
    """Reads and changes settings. `environ` and the secret box come in through the constructor."""

    def __init__(self, sessions: sessionmaker[Session], secrets: SecretBox,
                 environ: Mapping[str, str] | None = None) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._env = read_environment(os.environ if environ is None else environ)

    def get(self, actor: Actor, key: str) -> Resolved:
        """The effective value and where it came from. Unknown key: SettingError."""
        require(actor, Action.MANAGE_SETTINGS)
        return self._get(key)

    def _get(self, key: str) -> Resolved:
        if key not in SPECS:
            raise SettingError([Problem(key, UNKNOWN_SETTING)])
        with self._sessions() as s:
            row = s.get(Setting, key)
            return self._resolve(SPECS[key], row)

    @internal("the platform's own wiring reads its configuration; interfaces use get/all")
    def value(self, key: str) -> Any:
        return self._get(key).value

    def all(self, actor: Actor) -> list[Resolved]:
        require(actor, Action.MANAGE_SETTINGS)
        with self._sessions() as s:
            rows = {r.key: r for r in s.scalars(select(Setting))}
        return [self._resolve(spec, rows.get(key)) for key, spec in SPECS.items()]

    def set(self, actor: Actor, key: str, raw: str) -> Resolved:
        """Validate and store in the database; refused for env-only keys. Returns the new effective value."""
        require(actor, Action.MANAGE_SETTINGS)
        validate(key, raw)
        spec = SPECS[key]
        if spec.env_only:
            raise SettingError([Problem(key, Message("setting.env_only", "can only be set in the environment"))])
        stored = self._secrets.encrypt(raw) if spec.secret else raw
        with transaction(self._sessions) as s:
            row = s.get(Setting, key)
            old = row.value if row else None
            if row is None:
                s.add(Setting(key=key, value=stored, is_secret=spec.secret, updated_by=actor.username))
            else:
                row.value, row.updated_by = stored, actor.username
            s.add(SettingHistory(key=key, old_value=old, new_value=stored, is_secret=spec.secret,
                                 actor=actor.username))
        return self._get(key)

    def unset(self, actor: Actor, key: str) -> Resolved:
        """Remove the database value (back to the default or the environment). No-op if not set."""
        require(actor, Action.MANAGE_SETTINGS)
        validate(key, SPECS[key].default if key in SPECS else "")
        with transaction(self._sessions) as s:
            row = s.get(Setting, key)
            if row is not None:
                s.add(SettingHistory(key=key, old_value=row.value, new_value=None,
                                     is_secret=row.is_secret, actor=actor.username))
                s.execute(delete(Setting).where(Setting.key == key))
        return self._get(key)

    def history(self, actor: Actor, key: str | None = None, limit: int = 200) -> list[HistoryEntry]:
        """Newest first; secret values are masked."""
        require(actor, Action.MANAGE_SETTINGS)
        q = select(SettingHistory).order_by(SettingHistory.id.desc()).limit(limit)
        if key is not None:
            q = q.where(SettingHistory.key == key)
        with self._sessions() as s:
            return [self._entry(h) for h in s.scalars(q)]

    def restore(self, actor: Actor, history_id: int) -> Resolved:
        """Make the value recorded by history entry `history_id` (its new value) current again."""
        require(actor, Action.MANAGE_SETTINGS)
        with self._sessions() as s:
            h = s.get(SettingHistory, history_id)
        if h is None:
            raise SettingError([Problem("history", Message("setting.no_history", "no history entry {id}", id=history_id))])
        if h.new_value is None:
            return self.unset(actor, h.key)
        raw = self._secrets.decrypt(h.new_value) if h.is_secret else h.new_value
        return self.set(actor, h.key, raw)

    @internal("called by Platform.rotate_secret_key, which checks MANAGE_SETTINGS")
    def rotate_secrets(self, new_box: SecretBox) -> int:
        """Re-encrypt every stored secret (current and history) with `new_box`'s newest key."""
        count = 0
        with transaction(self._sessions) as s:
            for row in s.scalars(select(Setting).where(Setting.is_secret)):
                row.value, count = new_box.encrypt(self._secrets.decrypt(row.value)), count + 1
            for h in s.scalars(select(SettingHistory).where(SettingHistory.is_secret)):
                h.old_value = self._reencrypt(h.old_value, new_box)
                h.new_value = self._reencrypt(h.new_value, new_box)
        self._secrets = new_box
        return count

    def _reencrypt(self, token: str | None, new_box: SecretBox) -> str | None:
        return None if token is None else new_box.encrypt(self._secrets.decrypt(token))

    def _resolve(self, spec: SettingSpec, row: Setting | None) -> Resolved:
        if spec.key in self._env:
            raw, source = self._env[spec.key], Source.ENV
        elif row is not None:
            raw = self._secrets.decrypt(row.value) if row.is_secret else row.value
            source = Source.DB
        else:
            raw, source = spec.default, Source.DEFAULT
        try:
            value, error = validate(spec.key, raw), ""
        except SettingError as e:
            value, error = None, e.problems[0].reason
        return Resolved(spec.key, value, raw, source, spec.secret, error)

    def _entry(self, h: SettingHistory) -> HistoryEntry:
        show = (lambda v: None if v is None else mask(v)) if h.is_secret else (lambda v: v)
        return HistoryEntry(h.id, h.key, show(h.old_value), show(h.new_value), h.actor, h.changed_at)
