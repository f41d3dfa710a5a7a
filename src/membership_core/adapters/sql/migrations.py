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

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ...domain.email_settings import AutomatedEmail, EmailChoice, EmailSettings
from ...domain.settings import PortalSettings, SettingsStamp, SiteSettings
from ...errors import ConfigurationError
from ...serialization import structure, unstructure
from .schema import mappers, metadata, schema_version_table, tables

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


def _json(value: object) -> object:
    # A reflected JSON column may come back as its text (SQLite reflects it as such).
    return json.loads(value) if isinstance(value, str) else value


def _settings_in_one_record(connection: sa.Connection) -> None:
    # The site and email settings were two records of their own; every area now
    # lives in one versioned record with a stamp (see services/_settings_cache.py).
    # The old site base_url has no place: a portal's URL follows its domain
    # settings and the platform URL the host opens it with.
    metadata.create_all(connection, checkfirst=True)
    inspector = sa.inspect(connection)
    found: dict[str, dict[str, Any]] = {}
    for name, part in (("mc_settings", "site"), ("mc_email_settings", "email")):
        if inspector.has_table(name):
            old = sa.Table(name, sa.MetaData(), autoload_with=connection)
            for values in connection.execute(sa.select(old)).mappings():
                found.setdefault(values["tenant"], {})[part] = dict(values)
    for tenant, parts in found.items():
        site = parts.get("site", {})
        email = parts.get("email", {})
        choices = {
            kind.value: structure(_json(email[kind.value]), EmailChoice)
            for kind in AutomatedEmail
            if email.get(kind.value) is not None
        }
        settings = PortalSettings(
            version=1,
            site=SiteSettings(
                **{
                    k: site[k]
                    for k in ("title", "timezone", "currency", "support_email")
                    if k in site
                }
            ),
            email=structure(
                {
                    **{k: site[k] for k in ("sender_name", "sender_email") if site.get(k)},
                    **{kind: unstructure(choice) for kind, choice in choices.items()},
                },
                EmailSettings,
            ),
        )
        row = mappers["portal_settings"].to_row(settings)
        connection.execute(tables["portal_settings"].insert().values(tenant=tenant, **row))
        stamp = mappers["settings_stamps"].to_row(SettingsStamp("portal", 1))
        connection.execute(tables["settings_stamps"].insert().values(tenant=tenant, **stamp))
    for name in ("mc_settings", "mc_email_settings"):
        if inspector.has_table(name):
            sa.Table(name, sa.MetaData(), autoload_with=connection).drop(connection)


#: (version, description, apply) in order. Append; never edit a released step.
MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "initial schema", _initial_schema),
    (2, "tables and indexes added before the first release", _tables_and_indexes_since_1),
    (3, "every settings area in one versioned record", _settings_in_one_record),
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
