"""Counters of changes to some tables made by this process, for the short caches of the hot paths
(the API's key check, the invoker's resolved services).

A cache entry remembers `Changes.value` when it read the database and is stale as soon as the
value moved: every insert, update or delete of a watched model through the ORM in this process
(a revoke, a user's new role, a deploy's switch to a new version, a changed service setting)
moves it, at the flush and again at the commit (a reader that read between the two cannot keep
what it read). Changes made by other processes (the CLI, the pages) are not seen here: those
caches also expire after a bound of their own, which they document.
"""
from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, object_session

_PENDING = "algostage.changes"   # Session.info: the counters to move when that session commits


class Changes:
    def __init__(self, *models: type) -> None:
        self._models = models
        self._counter = itertools.count(1)
        self._value = 0
        for model in models:
            for name in ("after_insert", "after_update", "after_delete"):
                event.listen(model, name, self._flushed)
        if not event.contains(Session, "after_commit", _committed):
            event.listen(Session, "after_commit", _committed)
        event.listen(Session, "do_orm_execute", self._bulk)

    @property
    def value(self) -> int:
        return self._value

    def bump(self) -> None:
        self._value = next(self._counter)   # atomic under the GIL: two bumps never both get lost

    def _flushed(self, mapper: Any, connection: Any, target: Any) -> None:
        self.bump()
        session = object_session(target)
        if session is not None:
            session.info.setdefault(_PENDING, set()).add(self)

    def _bulk(self, state: ORMExecuteState) -> None:
        """`session.execute(update(Model)…)` / delete: no object is flushed, the rows change."""
        if (state.is_update or state.is_delete) and state.bind_mapper is not None \
                and state.bind_mapper.class_ in self._models:
            self.bump()
            state.session.info.setdefault(_PENDING, set()).add(self)


def _committed(session: Session) -> None:
    for changes in session.info.pop(_PENDING, ()):
        changes.bump()
