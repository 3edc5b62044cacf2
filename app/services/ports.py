"""Port allocation: ports come from a range, are reserved in the database under a unique
constraint (the primary key of `port_reservations`), are skipped when a foreign process holds
them on the host, and are released on remove. Two concurrent reservations never get the same
port: the loser of an insert race gets an IntegrityError and moves on to the next port."""
from __future__ import annotations

import socket
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.auth import internal
from app.models import PortReservation
from orchestration.errors import Message, PortUnavailable


def host_port_free(port: int) -> bool:
    """True if nothing listens on `port` on any local address (TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


WHY = "a building block of the deployer and the manager, used after their own checks"


class PortAllocator:
    def __init__(self, sessions: sessionmaker[Session], port_range: Callable[[], tuple[int, int]],
                 is_free: Callable[[int], bool] = host_port_free) -> None:
        self._sessions = sessions
        self._range = port_range
        self._is_free = is_free

    @internal(WHY)
    def reserve(self, owner: str, preferred: int | None = None) -> int:
        """Reserve a port for `owner` (e.g. a replica name) and return it.

        With `preferred`, only that port is tried (PortUnavailable if reserved or busy).
        Otherwise the lowest free port of the range. PortUnavailable when none is left."""
        if preferred:
            if self._try(preferred, owner):
                return preferred
            raise PortUnavailable(Message("port.taken", "port {port} is already reserved or in use on this host",
                                          port=preferred))
        lo, hi = self._range()
        taken = self._reserved_between(lo, hi)
        for port in range(lo, hi + 1):
            if port not in taken and self._try(port, owner):
                return port
        raise PortUnavailable(Message("port.none_left", "no free port left in {lo}-{hi}; widen ALGOSTAGE_PORT_RANGE or "
                                      "remove services", lo=lo, hi=hi))

    @internal(WHY)
    def release(self, owner: str, port: int | None = None) -> int:
        """Release every port reserved by `owner` (only `port`, when given); returns how many. Idempotent."""
        q = delete(PortReservation).where(PortReservation.owner == owner)
        if port is not None:
            q = q.where(PortReservation.port == port)
        with self._sessions() as s, s.begin():
            return s.execute(q).rowcount

    @internal(WHY)
    def owner_of(self, port: int) -> str | None:
        with self._sessions() as s:
            row = s.get(PortReservation, port)
            return row.owner if row else None

    @internal(WHY)
    def reservations(self) -> dict[int, str]:
        with self._sessions() as s:
            return {r.port: r.owner for r in s.scalars(select(PortReservation).order_by(PortReservation.port))}

    def _reserved_between(self, lo: int, hi: int) -> set[int]:
        with self._sessions() as s:
            q = select(PortReservation.port).where(PortReservation.port.between(lo, hi))
            return set(s.scalars(q))

    def _try(self, port: int, owner: str) -> bool:
        if not self._is_free(port):
            return False
        try:
            with self._sessions() as s, s.begin():
                s.add(PortReservation(port=port, owner=owner))
        except IntegrityError:
            return False
        return True
