"""The versioned migration runner on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from membership_core import ConfigurationError, Portal
from membership_core.adapters.sql import SqlStorage
from membership_core.adapters.sql.migrations import LATEST, current_version, migrate
from membership_core.adapters.sql.schema import TABLE_PREFIX, metadata, schema_version_table
from membership_core.domain.settings import SiteSettings


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_fresh_database_is_migrated_to_the_latest_version_once(database_url: str) -> None:
    storage = SqlStorage(database_url)
    try:
        assert migrate(storage.engine) == LATEST  # running again is a no-op
        with storage.engine.connect() as connection:
            assert current_version(connection) == LATEST
            rows = connection.execute(sa.select(schema_version_table)).all()
        assert [row.version for row in rows] == list(range(1, LATEST + 1))
    finally:
        storage.close()
    SqlStorage(database_url).close()


def test_migrated_schema_matches_the_declared_one(database_url: str) -> None:
    storage = SqlStorage(database_url)
    try:
        inspector = sa.inspect(storage.engine)
        live = {t for t in inspector.get_table_names() if t.startswith(TABLE_PREFIX)}
        assert live == set(metadata.tables)
        for name, table in metadata.tables.items():
            columns = {column["name"] for column in inspector.get_columns(name)}
            assert columns == set(table.columns.keys()), name
            indexes = {index["name"] for index in inspector.get_indexes(name)}
            assert {index.name for index in table.indexes} <= indexes, name
    finally:
        storage.close()


def test_a_database_from_before_the_new_tables_gets_them(database_url: str) -> None:
    storage = SqlStorage(database_url)
    rules = metadata.tables[f"{TABLE_PREFIX}automation_rules"]
    enrollments = metadata.tables[f"{TABLE_PREFIX}enrollments"]
    (by_product,) = [
        i for i in enrollments.indexes if list(i.columns.keys()) == ["tenant", "product_id", "id"]
    ]
    try:
        with storage.engine.begin() as connection:  # as a version-1 database left it
            rules.drop(connection)
            by_product.drop(connection)
            connection.execute(
                schema_version_table.delete().where(schema_version_table.c.version > 1)
            )
        assert migrate(storage.engine) == LATEST
        inspector = sa.inspect(storage.engine)
        assert inspector.has_table(rules.name)
        assert by_product.name in {i["name"] for i in inspector.get_indexes(enrollments.name)}
    finally:
        storage.close()


def test_only_prefixed_tables_are_created_beside_the_hosts(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    engine.dispose()
    storage = SqlStorage(sqlite_url)
    try:
        names = sa.inspect(storage.engine).get_table_names()
        assert [n for n in names if not n.startswith(TABLE_PREFIX)] == ["users"]
    finally:
        storage.close()


def test_a_newer_schema_is_refused(database_url: str) -> None:
    SqlStorage(database_url).close()
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(
            schema_version_table.insert().values(
                version=LATEST + 1,
                description="from the future",
                applied_at=sa.func.current_timestamp(),
            )
        )
    engine.dispose()
    with pytest.raises(ConfigurationError, match="newer"):
        SqlStorage(database_url)


def test_concurrent_opens_migrate_once(database_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_storage() -> None:
        barrier.wait()
        try:
            SqlStorage(database_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    storage = SqlStorage(database_url)
    try:
        with storage.engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(schema_version_table)
            ).scalar()
        assert count == LATEST
    finally:
        storage.close()


def test_bad_urls_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        SqlStorage("mysql://localhost/x")
    assert info.value.field == "url"
    with pytest.raises(ConfigurationError):
        SqlStorage("not a url at all")


def test_an_unreachable_server_is_a_storage_error(tmp_path: object) -> None:
    from membership_core import StorageError

    with pytest.raises(StorageError, match="cannot open"):
        SqlStorage("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageError, match="cannot open"):
        SqlStorage(f"sqlite:///{tmp_path}/missing-folder/x.db")


def test_the_old_site_and_email_records_move_into_the_settings_record(database_url: str) -> None:
    storage = SqlStorage(database_url)
    storage.close()
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:  # as migration 2 left a database with settings
        for table in ("mc_portal_settings", "mc_settings_stamps"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
        connection.execute(sa.text("DELETE FROM mc_schema_version WHERE version >= 3"))
        connection.execute(
            sa.text(
                "CREATE TABLE mc_settings (tenant VARCHAR(64), id VARCHAR(64), title TEXT, "
                "base_url TEXT, timezone TEXT, currency TEXT, support_email TEXT, "
                "sender_name TEXT, sender_email TEXT)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO mc_settings VALUES ('default', 'site', 'Old Academy', "
                "'https://old.example', 'Europe/Paris', 'EUR', NULL, 'Old Team', 'old@example.com')"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TABLE mc_email_settings (tenant VARCHAR(64), id VARCHAR(64), "
                "welcome JSON, drip JSON, offer_access JSON, new_comment JSON, new_materials JSON)"
            )
        )
        drip = json.dumps({"enabled": True, "template_id": None, "enabled_at": None})
        connection.execute(
            sa.text(
                "INSERT INTO mc_email_settings VALUES ('default', 'email', NULL, "
                f"{'CAST(:drip AS JSON)' if database_url.startswith('postgres') else ':drip'}, "
                "NULL, NULL, NULL)"
            ),
            {"drip": drip},
        )
    engine.dispose()
    with Portal.open(database_url, load_entrypoints=False) as portal:
        settings = portal.settings.get()
        assert settings.site == SiteSettings("Old Academy", "Europe/Paris", "EUR", None)
        assert (settings.email.sender_name, settings.email.sender_email) == (
            "Old Team",
            "old@example.com",
        )
        assert settings.email.drip.enabled
        assert not settings.email.welcome.enabled
        assert settings.version == 1
        storage = portal.storage
        assert isinstance(storage, SqlStorage)
        with storage.engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
            assert current_version(connection) == LATEST
    assert "mc_settings" not in names
    assert "mc_email_settings" not in names
