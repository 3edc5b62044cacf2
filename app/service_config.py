"""Per-service settings (the original plan's config API): get one, set one, list a service's.

Each key is declared with its type and default; values are validated, stored in
`service_configs`, and every change is kept in `service_config_history`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Action, Actor, require
from app.db import transaction
from app.errors import Problem, ValidationFailed
from app.models import AlgorithmService, ServiceConfig, ServiceConfigHistory
from app.settings import Source, parse_bool, parse_int_in, parse_text


def _parse_float_in(lo: float, hi: float):  # noqa: ANN202 - returns a parser
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {value:g}")
        return value
    return parse


@dataclass(frozen=True)
class ServiceSettingSpec:
    key: str
    parse: Any
    default: str
    help: str


SERVICE_SPECS: dict[str, ServiceSettingSpec] = {s.key: s for s in [
    ServiceSettingSpec("host", parse_text(100, r"[A-Za-z0-9.\-:]+"), "127.0.0.1", "address replicas listen on"),
    ServiceSettingSpec("port", parse_int_in(0, 65535), "0", "fixed port of replica 1; 0 = from the port range"),
    ServiceSettingSpec("timeout_s", _parse_float_in(0.1, 3600), "30", "time allowed for one call"),
    ServiceSettingSpec("retries", parse_int_in(0, 5), "1", "retries on another replica when a connection fails"),
    ServiceSettingSpec("health_timeout_s", _parse_float_in(1, 3600), "120", "time a replica may take to be READY"),
    ServiceSettingSpec("max_batch", parse_int_in(1, 1024), "16", "inputs sent in one request"),
    ServiceSettingSpec("max_body_mb", parse_int_in(1, 1024), "32", "largest request body"),
    ServiceSettingSpec("autorestart", parse_bool, "true", "restart a replica that exits"),
]}


@dataclass(frozen=True)
class ServiceSetting:
    key: str
    value: Any
    raw: str
    source: Source  # DB or DEFAULT


class ServiceConfigStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, service: str, key: str) -> ServiceSetting:
        """One setting of one service; unknown service or key: ValidationFailed."""
        spec = self._spec(key)
        with self._sessions() as s:
            svc = self._service(s, service)
            row = s.scalar(select(ServiceConfig).where(ServiceConfig.service_id == svc.id,
                                                       ServiceConfig.key == key))
        return self._resolved(spec, row)

    def list(self, service: str) -> list[ServiceSetting]:
        with self._sessions() as s:
            svc = self._service(s, service)
            rows = {r.key: r for r in s.scalars(select(ServiceConfig).where(ServiceConfig.service_id == svc.id))}
        return [self._resolved(spec, rows.get(key)) for key, spec in SERVICE_SPECS.items()]

    def set(self, actor: Actor, service: str, key: str, raw: str) -> ServiceSetting:
        """Validate and store; the change is recorded with who, old and new."""
        require(actor, Action.MANAGE_SERVICES)
        spec = self._spec(key)
        try:
            spec.parse(raw)
        except ValueError as e:
            raise ValidationFailed([Problem(key, str(e))]) from None
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
        return self.get(service, key)

    def history(self, service: str) -> list[ServiceConfigHistory]:
        with self._sessions() as s:
            q = select(ServiceConfigHistory).where(ServiceConfigHistory.service_name == service)
            return list(s.scalars(q.order_by(ServiceConfigHistory.id.desc())))

    @staticmethod
    def _spec(key: str) -> ServiceSettingSpec:
        if key not in SERVICE_SPECS:
            raise ValidationFailed([Problem(key, f"unknown service setting; known: {', '.join(SERVICE_SPECS)}")])
        return SERVICE_SPECS[key]

    @staticmethod
    def _service(s: Session, name: str) -> AlgorithmService:
        svc = s.scalar(select(AlgorithmService).where(AlgorithmService.name == name))
        if svc is None:
            raise ValidationFailed([Problem("service", f"no service {name!r}")])
        return svc

    @staticmethod
    def _resolved(spec: ServiceSettingSpec, row: ServiceConfig | None) -> ServiceSetting:
        raw, source = (row.value, Source.DB) if row else (spec.default, Source.DEFAULT)
        return ServiceSetting(spec.key, spec.parse(raw), raw, source)
