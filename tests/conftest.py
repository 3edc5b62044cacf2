"""Shared fixtures. Database tests run on SQLite and on the PostgreSQL server of this machine
(`ALGOSTAGE_TEST_PG`, default postgresql://postgres@127.0.0.1:5432/postgres). A missing
PostgreSQL fails the tests; it never skips them."""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app import db
from app.auth import Actor, Role
from app.platform import Platform
from orchestration.health import wait_ready as health_wait_ready

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("ALGOSTAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
KEEP_TABLES = {"roles", "alembic_version"}


class PgServer:
    """Creates throw-away databases on the test PostgreSQL server and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin = sa.create_engine(db.normalise_url(admin_url, Path(".")), isolation_level="AUTOCOMMIT")
        self.created: list[str] = []
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as e:
            raise RuntimeError(f"PostgreSQL is required for the test suite and is not reachable at "
                               f"{admin_url}: {e}") from e

    def create_database(self) -> str:
        name = f"algostage_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(PG_ADMIN_URL)
    yield server
    server.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a new, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def migrated_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated database per backend for the session; tables are emptied before each test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'algostage.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    engine = db.make_engine(db.normalise_url(url, Path(".")))
    db.migrate(engine)
    engine.dispose()
    return url


def empty_tables(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    meta.reflect(engine)
    tables = [t for t in reversed(meta.sorted_tables) if t.name not in KEEP_TABLES]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(t.delete())


@pytest.fixture
def platform(migrated_db_url: str, tmp_path: Path) -> Iterator[Platform]:
    """A platform over a fresh home and an emptied database (each backend)."""
    home = tmp_path / "home"
    environ = {"ALGOSTAGE_HOME": str(home), "DATABASE_URL": migrated_db_url}
    p = Platform.open(home, environ, migrate=False)
    empty_tables(p.engine)
    yield p
    p.close()


ADMIN = Actor("root-admin", Role.ADMIN)
OPERATOR = Actor("op", Role.OPERATOR)
VIEWER = Actor("viewer", Role.VIEWER)


def wait_ready(url: str, timeout: float = 60) -> None:
    """Until the replica at `url` answers /health READY (or BUSY); fails with the last state seen."""
    with httpx.Client() as client:
        health = health_wait_ready(client, url, timeout)
    assert health.ready, f"{url} never READY: {health.status} {health.error}"


def demo_media(name: str) -> Path:
    """A file of the committed demo media (demo_data/media); fails, never skips, when missing."""
    path = ROOT / "demo_data" / "media" / name
    if not path.is_file():
        pytest.fail(f"demo media {name} is missing from demo_data/media")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment directory for the whole run, as ALGOSTAGE_ENV_DIR shares environments
    between platforms: only the first deploy of a set of requirements builds one. (Tests that
    run platforms in subprocesses use the same folder, `shared-envs` under pytest's base temp.)"""
    path = tmp_path_factory.getbasetemp() / "shared-envs"
    path.mkdir(exist_ok=True)
    return path


def private_port_range() -> str:
    """100 ports for a test platform's replicas, between 20000 and 31999: below the kernel's
    ephemeral range (32768-60999 here), whose ports any outgoing connection (a database pool's, a
    client's) may take between the platform's check that a port is free and the replica's bind —
    that made a replica FATAL with "address already in use" in a CI run. Which block: chosen from
    a fresh ephemeral port, so successive platforms spread over the 120 blocks."""
    low = 20000 + free_port() // 2 % 120 * 100   # // 2: bind(0) hands out ports of one parity
    return f"{low}-{low + 99}"


def service_platform(db_url: str, home: Path, envs: Path) -> Platform:
    """A platform over an emptied database that can deploy services: shared environments and a
    port range of its own. The caller shuts its supervisord down (`p.daemon.shutdown()`)."""
    environ = {"ALGOSTAGE_HOME": str(home), "DATABASE_URL": db_url, "ALGOSTAGE_ENV_DIR": str(envs),
               "ALGOSTAGE_PORT_RANGE": private_port_range()}
    p = Platform.open(home, environ, migrate=False)
    empty_tables(p.engine)
    return p


def browser_session(platform: Platform, role: Role, username: str | None = None) -> dict[str, object]:
    """What a signed-in browser's st.session_state holds for a user of `role` (created if need
    be): app/main.py re-validates it against the sessions table on every rerun, so a test that
    runs the whole app must sign in for real."""
    from sqlalchemy import select

    from app.models import User
    username = username or f"{role.value}-user"
    with platform.sessions() as s:
        user_id = s.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        user_id = platform.auth.create_user(Actor("setup", Role.ADMIN), username, "password-123", role).id
    who, _ = platform.auth.start_session(Actor(username, role, user_id))
    return {"actor": who, "session_id": who.session_id}
