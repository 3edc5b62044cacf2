"""Fixtures of the integration tests: real engines (tests/engines.py)."""
from tests.engines import docker_engine, engine  # noqa: F401 - registers the fixtures
