"""Layered settings: environment > database > defaults, each value knowing its source.

Every setting is declared once in `SPECS` with its type, default and validation. The
environment layer is read with pydantic-settings; the database layer lives in the `settings`
table, every change recorded in `setting_history` (who, when, old, new) so any earlier value
can be restored. Secret values are encrypted in the database and masked everywhere else.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import create_model
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.crypto import SecretBox, mask
from app.db import transaction
from app.errors import Problem, ValidationFailed
from app.models import Setting, SettingHistory


class Source(StrEnum):
    ENV = "environment"
    DB = "database"
    DEFAULT = "default"


class SettingError(ValidationFailed):
    """A setting key or value was refused; `problems` name the field and the reason."""


# --- value parsers: str -> typed value, ValueError(reason) when invalid ----------------------

def parse_int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value
    return parse


def parse_port_range(raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not m:
        raise ValueError(f"must look like 18000-18999, got {raw!r}")
    lo, hi = int(m[1]), int(m[2])
    if not 1024 <= lo < hi <= 65535:
        raise ValueError(f"needs 1024 <= start < end <= 65535, got {lo}-{hi}")
    return lo, hi


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw.strip()
    return parse


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def parse_url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}, got {raw!r}")
        return raw.strip().rstrip("/")
    return parse


def parse_host_port(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", raw.strip()):
        raise ValueError(f"must be host:port without a scheme, e.g. 127.0.0.1:9000, got {raw!r}")
    return raw.strip()


def parse_text(max_len: int = 300, pattern: str | None = None) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if len(value) > max_len:
            raise ValueError(f"must be at most {max_len} characters")
        if pattern and value and not re.fullmatch(pattern, value):
            raise ValueError(f"must match {pattern}")
        return value
    return parse


def parse_existing_file(raw: str) -> str:
    if raw.strip() and not Path(raw.strip()).is_file():
        raise ValueError(f"file does not exist: {raw.strip()}")
    return raw.strip()


def parse_size_mb(raw: str) -> int:
    return parse_int_in(1, 100_000)(raw)


@dataclass(frozen=True)
class SettingSpec:
    key: str
    parse: Callable[[str], Any]
    default: str
    help: str
    group: str = "platform"
    env_only: bool = False
    secret: bool = False


SPECS: dict[str, SettingSpec] = {s.key: s for s in [
    SettingSpec("ALGOSTAGE_HOME", parse_text(500), "./var", "all runtime state", env_only=True),
    SettingSpec("ALGOSTAGE_UI_PORT", parse_int_in(1, 65535), "8501", "Streamlit port"),
    SettingSpec("ALGOSTAGE_PORT_RANGE", parse_port_range, "18000-18999", "ports handed to service replicas",
                group="services"),
    SettingSpec("ALGOSTAGE_RUNTIME", parse_choice("supervisor", "docker"), "supervisor",
                "default runtime for deploys", group="services"),
    SettingSpec("ALGOSTAGE_ADMIN_PASSWORD", parse_text(200), "", "password of the first admin",
                env_only=True, secret=True),
    SettingSpec("ALGOSTAGE_SECRET_KEY", parse_text(2000), "", "encrypts secrets in the database",
                env_only=True, secret=True),
    SettingSpec("DATABASE_URL", parse_text(500), "", "database URL; SQLite under ALGOSTAGE_HOME when empty",
                env_only=True, secret=True),
    SettingSpec("ALGOSTAGE_LOG_MAX_MB", parse_int_in(1, 1024), "10", "size of a service log before rotation",
                group="services"),
    SettingSpec("ALGOSTAGE_LOG_BACKUPS", parse_int_in(0, 100), "5", "rotated service logs kept", group="services"),
    SettingSpec("ALGOSTAGE_MAX_UPLOAD_MB", parse_size_mb, "200", "largest upload accepted", group="upload"),
    SettingSpec("ALGOSTAGE_ALLOW_REQUIREMENT_REDIRECTS", parse_bool, "false",
                "accept requirements that redirect installs (index URLs, -e, paths, URLs)", group="upload"),
    SettingSpec("ALGOSTAGE_PIP_INDEX_URL", parse_text(500), "", "package index for environments", group="build"),
    SettingSpec("ALGOSTAGE_PIP_PROXY", parse_text(500), "", "HTTP(S) proxy for package installs", group="build"),
    SettingSpec("ALGOSTAGE_PIP_CA_BUNDLE", parse_existing_file, "", "CA bundle for package installs",
                group="build"),
    SettingSpec("ALGOSTAGE_ENV_DIR", parse_text(500), "", "where environments are built and shared; "
                "`$ALGOSTAGE_HOME/envs` when empty", env_only=True),
    SettingSpec("ALGOSTAGE_DOCKER_BASE_IMAGE", parse_text(300), "algostage/base:bookworm",
                "base image of generated Dockerfiles", group="build"),
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
    SettingSpec("DOCKER_HOST", parse_url("unix", "tcp", "ssh", "http", "https"), "",
                "container engine; the docker SDK's default when empty", group="services"),
]}


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


def validate(key: str, raw: str) -> Any:
    """Parse `raw` for `key`; raises SettingError(field=key, reason) for unknown keys or bad values."""
    spec = SPECS.get(key)
    if spec is None:
        raise SettingError([Problem(key, "unknown setting")])
    if raw == "" and spec.default == "":
        return ""
    try:
        return spec.parse(raw)
    except ValueError as e:
        raise SettingError([Problem(key, str(e))]) from None


class SettingsStore:
    """Reads and changes settings. `environ` and the secret box come in through the constructor."""

    def __init__(self, sessions: sessionmaker[Session], secrets: SecretBox,
                 environ: Mapping[str, str] | None = None) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._env = read_environment(os.environ if environ is None else environ)

    def get(self, key: str) -> Resolved:
        """The effective value and where it came from. Unknown key: SettingError."""
        if key not in SPECS:
            raise SettingError([Problem(key, "unknown setting")])
        with self._sessions() as s:
            row = s.get(Setting, key)
            return self._resolve(SPECS[key], row)

    def value(self, key: str) -> Any:
        return self.get(key).value

    def all(self) -> list[Resolved]:
        with self._sessions() as s:
            rows = {r.key: r for r in s.scalars(select(Setting))}
        return [self._resolve(spec, rows.get(key)) for key, spec in SPECS.items()]

    def set(self, key: str, raw: str, actor: str) -> Resolved:
        """Validate and store in the database; refused for env-only keys. Returns the new effective value."""
        validate(key, raw)
        spec = SPECS[key]
        if spec.env_only:
            raise SettingError([Problem(key, "can only be set in the environment")])
        stored = self._secrets.encrypt(raw) if spec.secret else raw
        with transaction(self._sessions) as s:
            row = s.get(Setting, key)
            old = row.value if row else None
            if row is None:
                s.add(Setting(key=key, value=stored, is_secret=spec.secret, updated_by=actor))
            else:
                row.value, row.updated_by = stored, actor
            s.add(SettingHistory(key=key, old_value=old, new_value=stored, is_secret=spec.secret, actor=actor))
        return self.get(key)

    def unset(self, key: str, actor: str) -> Resolved:
        """Remove the database value (back to the default or the environment). No-op if not set."""
        validate(key, SPECS[key].default if key in SPECS else "")
        with transaction(self._sessions) as s:
            row = s.get(Setting, key)
            if row is not None:
                s.add(SettingHistory(key=key, old_value=row.value, new_value=None,
                                     is_secret=row.is_secret, actor=actor))
                s.execute(delete(Setting).where(Setting.key == key))
        return self.get(key)

    def history(self, key: str | None = None, limit: int = 200) -> list[HistoryEntry]:
        """Newest first; secret values are masked."""
        q = select(SettingHistory).order_by(SettingHistory.id.desc()).limit(limit)
        if key is not None:
            q = q.where(SettingHistory.key == key)
        with self._sessions() as s:
            return [self._entry(h) for h in s.scalars(q)]

    def restore(self, history_id: int, actor: str) -> Resolved:
        """Make the value recorded by history entry `history_id` (its new value) current again."""
        with self._sessions() as s:
            h = s.get(SettingHistory, history_id)
        if h is None:
            raise SettingError([Problem("history", f"no history entry {history_id}")])
        if h.new_value is None:
            return self.unset(h.key, actor)
        raw = self._secrets.decrypt(h.new_value) if h.is_secret else h.new_value
        return self.set(h.key, raw, actor)

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
