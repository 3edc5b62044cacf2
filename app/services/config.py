"""Per-service settings (the original plan's config API): get one, set one, list a service's.

Each key is declared with its type, default and when it takes effect; values are validated,
stored in `service_configs`, and every change is kept in `service_config_history`. Who reads
each one:
- host, health_timeout_s, max_body_mb, autorestart: the deployer, for the replicas it starts
  (bind address, health gate, the runner's body limit, restart policy) — from the next deploy;
- max_batch: the invoker (inputs per request) at once, and the runner's own limit from the next deploy;
- timeout_s, retries: the invoker, at once.
("At once" for the invoker: in the process that changed it, at the next call; in another process,
within 1 s — app/invoke.py's TARGET_CACHE_S.)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, internal, require
from app.db import transaction
from app.errors import Message, Problem, ValidationFailed
from app.models import AlgorithmService, ServiceConfig, ServiceConfigHistory
from app.services.rows import get_service
from app.settings import Source
from orchestration.errors import reason_of
from orchestration.config import parse_bool, parse_float_in, parse_int_in, parse_text


NEXT_DEPLOY = "next deploy"
AT_ONCE = "at once"


@dataclass(frozen=True)
class ServiceSettingSpec:
    key: str
    parse: Any
    default: str
    help: str
    applies: str = AT_ONCE


SERVICE_SPECS: dict[str, ServiceSettingSpec] = {s.key: s for s in [
    ServiceSettingSpec("host", parse_text(100, r"[A-Za-z0-9.\-:]+"), "127.0.0.1",
                       "address replicas listen on (0.0.0.0: every interface)", NEXT_DEPLOY),
    ServiceSettingSpec("timeout_s", parse_float_in(0.1, 3600), "30", "time allowed for one call"),
    ServiceSettingSpec("retries", parse_int_in(0, 5), "1", "retries on another replica when a connection fails"),
    ServiceSettingSpec("health_timeout_s", parse_float_in(1, 3600), "120", "time a replica may take to be READY",
                       NEXT_DEPLOY),
    ServiceSettingSpec("max_batch", parse_int_in(1, 1024), "16", "inputs sent in one request (larger batches "
                       "are split)"),
    ServiceSettingSpec("max_body_mb", parse_int_in(1, 1024), "32", "largest request body a replica accepts",
                       NEXT_DEPLOY),
    ServiceSettingSpec("autorestart", parse_bool, "true", "restart a replica that exits", NEXT_DEPLOY),
]}


@dataclass(frozen=True)
class ServiceSetting:
    key: str
    value: Any
    raw: str
    source: Source  # DB or DEFAULT


def parsed(raw: Mapping[str, str]) -> dict[str, Any]:
    """Every setting's value from the stored raw values (`key → text`), defaults for the rest."""
    return {key: spec.parse(raw.get(key, spec.default)) for key, spec in SERVICE_SPECS.items()}


class ServiceConfigStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, actor: Actor, service: str, key: str) -> ServiceSetting:
        """One setting of one service; unknown service or key: ValidationFailed."""
        require(actor, Action.VIEW_SERVICES)
        return self._get(service, key)

    def _get(self, service: str, key: str) -> ServiceSetting:
        spec = self._spec(key)
        with self._sessions() as s:
            svc = self._service(s, service)
            row = s.scalar(select(ServiceConfig).where(ServiceConfig.service_id == svc.id,
                                                       ServiceConfig.key == key))
        return self._resolved(spec, row)

    def list(self, actor: Actor, service: str) -> list[ServiceSetting]:
        require(actor, Action.VIEW_SERVICES)
        with self._sessions() as s:
            svc = self._service(s, service)
            rows = {r.key: r for r in s.scalars(select(ServiceConfig).where(ServiceConfig.service_id == svc.id))}
        return [self._resolved(spec, rows.get(key)) for key, spec in SERVICE_SPECS.items()]

    @internal("read by the deployer and the invoker, which checked the actor's right to deploy or invoke")
    def values(self, service: str) -> dict[str, Any]:
        """Every setting's value for `service`; the defaults when it is not deployed yet."""
        with self._sessions() as s:
            q = select(ServiceConfig.key, ServiceConfig.value).join(AlgorithmService).where(
                AlgorithmService.name == service)
            raw = dict(s.execute(q).all())
        return parsed(raw)

    def set(self, actor: Actor, service: str, key: str, raw: str) -> ServiceSetting:
        """Validate and store; the change is recorded with who, old and new."""
        require(actor, Action.MANAGE_SERVICES)
        spec = self._spec(key)
        try:
            spec.parse(raw)
        except ValueError as e:
            raise ValidationFailed([Problem(key, reason_of(e))]) from None
        with transaction(self._sessions) as s:
            svc = self._service(s, service)
            row = s.scalar(select(ServiceConfig).where(ServiceConfig.service_id == svc.id, ServiceConfig.key == key))
            old = row.value if row else None
            if row is None:
                s.add(ServiceConfig(service_id=svc.id, key=key, value=raw.strip(), updated_by=actor.username))
            else:
                row.value, row.updated_by = raw.strip(), actor.username
            s.add(ServiceConfigHistory(service_name=service, key=key, old_value=old, new_value=raw.strip(),
                                       actor=actor.username))
        return self._get(service, key)

    def history(self, actor: Actor, service: str) -> list[ServiceConfigHistory]:
        require(actor, Action.VIEW_SERVICES)
        with self._sessions() as s:
            q = select(ServiceConfigHistory).where(ServiceConfigHistory.service_name == service)
            return list(s.scalars(q.order_by(ServiceConfigHistory.id.desc())))

    @staticmethod
    def _spec(key: str) -> ServiceSettingSpec:
        if key not in SERVICE_SPECS:
            raise ValidationFailed([Problem(key, Message("service_setting.unknown", "unknown service setting; known: {known}",
                                                     known=", ".join(SERVICE_SPECS)))])
        return SERVICE_SPECS[key]

    @staticmethod
    def _service(s: Session, name: str) -> AlgorithmService:
        return get_service(s, name)

    @staticmethod
    def _resolved(spec: ServiceSettingSpec, row: ServiceConfig | None) -> ServiceSetting:
        raw, source = (row.value, Source.DB) if row else (spec.default, Source.DEFAULT)
        return ServiceSetting(spec.key, spec.parse(raw), raw, source)
