"""A small versioned migration runner.

Why not alembic: the library is embedded in host applications that often have
an alembic environment of their own; ours must run from ``Portal.open`` with
no ini file or script folder, on SQLite and PostgreSQL, on tables we prefix
``mc_`` inside the host's database. Each migration is a numbered function; the
runner applies the missing ones in order, inside one transaction, holding a
lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL) so two
processes opening the same database at once migrate it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from ...errors import ConfigurationError
from .schema import metadata, schema_version_table

__all__ = ["MIGRATIONS", "current_version", "migrate"]

_ADVISORY_LOCK_KEY = 0x6D635F6D6967  # "mc_mig"


def _initial_schema(connection: sa.Connection) -> None:
    metadata.create_all(connection, checkfirst=True)


def _tables_and_indexes_since_1(connection: sa.Connection) -> None:
    # Before the first release the schema grew (account requests, email
    # settings and templates, assessments, automation rules, an index of
    # enrollments by product) without steps of its own: databases made in
    # between get what they miss. The first release freezes this step; later
    # ones name exactly what they add.
    metadata.create_all(connection, checkfirst=True)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)


#: (version, description, apply) in order. Append; never edit a released step.
MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "initial schema", _initial_schema),
    (2, "tables and indexes added before the first release", _tables_and_indexes_since_1),
)

LATEST = MIGRATIONS[-1][0]


def current_version(connection: sa.Connection) -> int:
    """The highest applied migration, or 0 for an empty database."""
    if not sa.inspect(connection).has_table(schema_version_table.name):
        return 0
    version = connection.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
    return int(version or 0)


def migrate(engine: sa.Engine) -> int:
    """Bring the database up to the latest schema; return the version reached."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
        version = current_version(connection)
        if version > LATEST:
            raise ConfigurationError(
                f"database schema version {version} is newer than this library "
                f"supports ({LATEST}); upgrade membership_core"
            )
        if version == 0:
            schema_version_table.create(connection, checkfirst=True)
        for number, description, apply in MIGRATIONS:
            if number > version:
                apply(connection)
                connection.execute(
                    schema_version_table.insert().values(
                        version=number, description=description, applied_at=datetime.now(UTC)
                    )
                )
        return LATEST
