"""Port reservations on both databases: unique under concurrency, foreign listeners skipped, release."""
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestration.errors import PortUnavailable
from app.services.ports import PortAllocator, host_port_free


def allocator(platform, lo=18000, hi=18099, is_free=lambda p: True):
    return PortAllocator(platform.sessions, lambda: (lo, hi), is_free)


def test_twenty_concurrent_reservations_get_twenty_different_ports(platform):
    ports = allocator(platform)
    with ThreadPoolExecutor(max_workers=20) as pool:
        got = list(pool.map(lambda i: ports.reserve(f"algo-x-{i}"), range(20)))
    assert len(set(got)) == 20
    assert sorted(ports.reservations()) == sorted(got)


def test_concurrent_allocators_with_separate_engines(platform, migrated_db_url):
    """Like two deploys in two processes: separate connection pools, one database."""
    from app import db
    from pathlib import Path
    engines = [db.make_engine(db.normalise_url(migrated_db_url, Path("."))) for _ in range(4)]
    allocs = [PortAllocator(db.session_factory(e), lambda: (18000, 18099), lambda p: True) for e in engines]
    with ThreadPoolExecutor(max_workers=20) as pool:
        got = list(pool.map(lambda i: allocs[i % 4].reserve(f"algo-y-{i}"), range(20)))
    assert len(set(got)) == 20
    for e in engines:
        e.dispose()


def test_port_held_by_a_foreign_process_is_skipped(platform):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not host_port_free(busy)
        ports = PortAllocator(platform.sessions, lambda: (busy, busy + 1))
        got = ports.reserve("algo-z-1")
        assert got == busy + 1
        with pytest.raises(PortUnavailable, match="in use"):
            ports.reserve("algo-z-2", preferred=busy)


def test_range_exhausted_and_release(platform):
    ports = allocator(platform, 18000, 18001)
    assert [ports.reserve("a"), ports.reserve("b")] == [18000, 18001]
    with pytest.raises(PortUnavailable, match="no free port left in 18000-18001"):
        ports.reserve("c")
    assert ports.release("a") == 1
    assert ports.release("a") == 0  # idempotent
    assert ports.reserve("c") == 18000
    assert ports.owner_of(18000) == "c"
