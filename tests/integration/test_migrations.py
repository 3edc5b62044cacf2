"""Migrations from an empty database, on SQLite and PostgreSQL; models and migrations agree."""
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app import db
from app.models import Base

ORIGINAL_PLAN_TABLES = {"algorithms", "algorithm_versions", "roles", "users", "algorithm_calls", "gitea_configs",
                        "algorithm_repositories", "service_groups", "algorithm_services", "service_configs"}


def _engine(url: str) -> sa.Engine:
    return db.make_engine(db.normalise_url(url, Path(".")))


def test_upgrade_from_empty_creates_every_table_and_seeds_roles(empty_db_url):
    engine = _engine(empty_db_url)
    assert db.schema_revision(engine) is None
    db.migrate(engine)
    assert db.schema_revision(engine) == db.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert ORIGINAL_PLAN_TABLES <= tables
    assert {"settings", "setting_history", "port_reservations", "service_replicas", "deployments"} <= tables
    with engine.connect() as conn:
        assert sorted(conn.scalars(sa.text("SELECT name FROM roles"))) == ["admin", "operator", "viewer"]
    engine.dispose()


def test_migrations_match_the_models(empty_db_url):
    engine = _engine(empty_db_url)
    db.migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_downgrade_to_base_then_upgrade_again(empty_db_url):
    engine = _engine(empty_db_url)
    db.migrate(engine)
    db.downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    db.migrate(engine)
    db.migrate(engine)  # idempotent
    assert db.schema_revision(engine) == db.head_revision()
    engine.dispose()


def test_unique_constraints_hold(empty_db_url):
    engine = _engine(empty_db_url)
    db.migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO port_reservations (port, owner, reserved_at) VALUES (18000, 'a', CURRENT_TIMESTAMP)"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO port_reservations (port, owner, reserved_at) VALUES (18000, 'b', CURRENT_TIMESTAMP)"))
        raise AssertionError("duplicate port accepted")
    except sa.exc.IntegrityError:
        pass
    engine.dispose()


def test_database_url_normalisation(tmp_path):
    assert db.normalise_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'algostage.db'}"
    assert db.normalise_url("postgresql://u@h/d", tmp_path) == "postgresql+psycopg://u@h/d"
    assert db.normalise_url("postgres://u@h/d", tmp_path) == "postgresql+psycopg://u@h/d"
