"""Shared fixtures: storage back ends (memory, SQLite file, real PostgreSQL)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from membership_core.adapters.memory_storage import MemoryStorage
from membership_core.adapters.sql import SqlStorage
from membership_core.ports.storage import Storage
from membership_core.testing import TestPortal, make_test_portal

from .pg_server import PostgresServer

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole test session."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the throwaway server."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path}/portal.db"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a storage back end; tests using it run once per back end."""
    return str(request.param)


@pytest.fixture
def storage_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A URL for ``Portal.open`` on a fresh database of ``backend``."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest) -> Iterator[Storage]:
    """A fresh storage adapter of ``backend``."""
    if backend == "memory":
        adapter: Storage = MemoryStorage()
    else:
        adapter = SqlStorage(str(request.getfixturevalue("storage_url")))
    try:
        yield adapter
    finally:
        adapter.close()


PortalFactory = Callable[..., TestPortal]


@pytest.fixture
def open_portal(storage_url: str) -> Iterator[PortalFactory]:
    """Open test portals on ``storage_url`` (or another URL); all closed at teardown."""
    opened: list[TestPortal] = []

    def factory(url: str | Storage | None = None, **options: Any) -> TestPortal:
        portal = make_test_portal(storage_url if url is None else url, **options)
        opened.append(portal)
        return portal

    yield factory
    for portal in opened:
        portal.close()
