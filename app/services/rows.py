"""The one place a service row is looked up by name (DESIGN: one repository function, not the
same query in every module)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import LoaderOption

from app.errors import Message, Missing, Problem
from app.models import AlgorithmService, ServiceReplica
from orchestration.errors import kept
from orchestration.runtime import Endpoint, TaskEndpoint


def find_service(s: Session, name: str, *options: LoaderOption) -> AlgorithmService | None:
    """The service called `name` (with the given loader options), or None."""
    return s.scalar(select(AlgorithmService).where(AlgorithmService.name == name).options(*options))


def get_service(s: Session, name: str, *options: LoaderOption) -> AlgorithmService:
    """The service called `name`; ValidationFailed ("service") when there is none."""
    svc = find_service(s, name, *options)
    if svc is None:
        raise Missing([Problem("service", Message("service.missing", "no service {name!r}", name=name))])
    return svc


def place(row: ServiceReplica, endpoint: Endpoint) -> bool:
    """The replica's row says it answers at `endpoint` (a cluster moved or restarted its task);
    True when that is a move."""
    moved = row.endpoint != endpoint.url
    row.endpoint, row.port = endpoint.url, endpoint.port
    return moved


def note_route(row: ServiceReplica, note: str) -> None:
    """Why the replica is in or out of rotation: its English text (the API, the CLI) and the message
    it was made of (a page says it in its reader's language). Every writer of the note goes here,
    so the two never disagree."""
    row.route_note, row.route_note_message = kept(note, 300)


def note_error(svc: AlgorithmService, error: str) -> None:
    """The service's last deploy error ("" when it has none): its English text and the message it
    was made of, as `note_route` keeps a replica's note."""
    svc.last_error, svc.last_error_message = kept(error, 2000)


def follow_tasks(rows: Iterable[ServiceReplica], found: Mapping[str, TaskEndpoint],
                 versions: Mapping[str, int] | None = None) -> dict[str, Endpoint]:
    """Each row whose cluster task is in `found` (task name → running task) takes that task's
    endpoint, and its version when `versions` (tag → version id) knows the task's tag. Returns the
    rows in rotation that moved (name → new endpoint): what the gateway must be told."""
    moved = {}
    for row in rows:
        task = found.get(row.backend_name)
        if task is None:
            continue
        if versions is not None:
            row.version_id = versions.get(task.version, row.version_id)
        if place(row, task.endpoint) and row.routed:
            moved[row.backend_name] = task.endpoint
    return moved
