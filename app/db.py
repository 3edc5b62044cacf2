"""Database access: URL resolution, engines, sessions and Alembic migrations.

`DATABASE_URL` selects the database; without it an SQLite file under `$ALGOSTAGE_HOME` is
used. Schema changes happen only through the Alembic migrations in `app/migrations`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.errors import AlgoStageError, Message

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseUnavailable(AlgoStageError):
    """The database refused a connection or dropped one (a restart, a network cut). The statement
    that met it did not complete; the pool (pre-ping) reconnects on a later use, so the platform
    needs no restart once the database answers again."""
    code = "database_unavailable"


def normalise_url(url: str | None, home: Path) -> str:
    """Return a SQLAlchemy URL: `postgres(ql)://` uses psycopg 3; empty means SQLite in `home`."""
    if not url:
        return f"sqlite:///{(home / 'algostage.db').resolve()}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout (several processes share
    it), and its file (password hashes, encrypted secrets) is readable by its owner only — SQLite
    gives its -wal and -shm files the database file's mode."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            path = Path(database)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.chmod(0o600)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "handle_error", _unavailable)
    return engine


def _unavailable(ctx: ExceptionContext) -> None:
    """A connection the database refused (at connect: no connection yet) or dropped becomes
    DatabaseUnavailable, a message for users instead of a driver's traceback. A failed pre-ping is
    left alone: the pool then opens a new connection itself."""
    operational = getattr(ctx.dialect.loaded_dbapi, "OperationalError", ())
    if ctx.is_pre_ping or not (ctx.is_disconnect or (ctx.connection is None and
                                                     isinstance(ctx.original_exception, operational))):
        return
    reason = (str(ctx.original_exception).strip().splitlines() or ["no reason given"])[0][:300]
    raise DatabaseUnavailable(Message("db.unreachable", "the database is not reachable: {reason}", reason=reason),
                              hint=Message("db.unreachable.hint", "try again in a moment; nothing needs restarting")) from ctx.original_exception


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def insert_ignoring_conflict(s: Session, model: type[DeclarativeBase], values: dict, keys: list[str]) -> bool:
    """INSERT … ON CONFLICT (keys) DO NOTHING on PostgreSQL or SQLite; True if the row was inserted."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    column = getattr(model, keys[0])
    return s.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
                     .returning(column)).first() is not None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (idempotent)."""
    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    command.downgrade(_alembic_config(engine), revision)


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def backend_name(engine: Engine) -> str:
    """`sqlite` or `postgresql` (the dialect name)."""
    return engine.dialect.name
