"""The SQL unit of work and repositories."""

from __future__ import annotations

import enum
import functools
import operator
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast

import attrs
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url

from ...errors import ConfigurationError, Conflict, Contention, NotFound, StorageError
from ...ports.storage import COLLECTIONS, AccessFacts, UnitOfWork
from .migrations import migrate
from .schema import RowMapper, mappers, tables

__all__ = ["SqlStorage"]

T = TypeVar("T")
_Q = TypeVar("_Q", bound=sa.Executable)

#: Seconds a SQLite writer waits for the lock before failing.
SQLITE_BUSY_TIMEOUT = 10.0


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@attrs.frozen
class _Statements:
    """A table's insert and update, built once: executed with parameters, they
    skip rebuilding and re-caching the statement on every write."""

    insert: sa.Insert
    update: sa.Update


@functools.cache
def _statements(name: str) -> _Statements:
    table = tables[name]
    update = table.update().where(
        table.c.tenant == sa.bindparam("_tenant"), table.c.id == sa.bindparam("_id")
    )
    return _Statements(table.insert(), update)


@functools.cache
def _unique_keys(name: str) -> tuple[tuple[str, ...], ...]:
    collection = next(c for c in COLLECTIONS if c.name == name)
    return collection.unique + collection.unique_across_portals


class _Repository(Generic[T]):
    def __init__(self, uow: _UnitOfWork, name: str) -> None:
        self._uow = uow
        self._name = name
        self._table = tables[name]
        self._mapper: RowMapper = mappers[name]
        self._uniques = _unique_keys(name)

    @property
    def _conn(self) -> sa.Connection:
        return self._uow._connection()

    def _scoped(self) -> sa.ColumnElement[bool]:
        return self._table.c.tenant == self._uow.tenant

    def _column(self, name: str) -> sa.Column[Any]:
        if name == "tenant" or name not in self._table.c:
            raise StorageError(f"{self._name} has no field {name!r}")
        return self._table.c[name]

    def _cached(self, key: tuple[Any, ...], build: Callable[[], _Q]) -> _Q:
        """A statement built once per table and query shape, run with bound values.

        Building a select and computing its cache key costs more than SQLite
        takes to answer it; the values always travel as parameters.
        """
        cache = self._uow._storage._queries
        statement = cache.get((self._name, *key))
        if statement is None:
            statement = cache[(self._name, *key)] = build()
        return statement

    def _bound(
        self, where: Mapping[str, object] | None
    ) -> tuple[tuple[tuple[str, bool], ...], dict[str, Any]]:
        """The shape of ``where`` (names, and which are None) and its parameters."""
        shape: list[tuple[str, bool]] = []
        params: dict[str, Any] = {"_tenant": self._uow.tenant}
        for name, value in (where or {}).items():
            self._column(name)  # refuses unknown fields before anything is built
            shape.append((name, value is None))
            if value is not None:
                params[f"w_{name}"] = _plain(value)
        return tuple(shape), params

    def _clauses(self, shape: tuple[tuple[str, bool], ...]) -> list[sa.ColumnElement[bool]]:
        clauses = [self._table.c.tenant == sa.bindparam("_tenant")]
        for name, is_none in shape:
            column = self._column(name)
            clauses.append(column.is_(None) if is_none else column == sa.bindparam(f"w_{name}"))
        return clauses

    def _one(self, id: str, lock: bool) -> T | None:
        def build() -> sa.Select[Any]:
            query = sa.select(self._table).where(
                self._table.c.tenant == sa.bindparam("_tenant"),
                self._table.c.id == sa.bindparam("_id"),
            )
            return query.with_for_update() if lock else query

        query = self._cached(("one", lock), build)
        params = {"_tenant": self._uow.tenant, "_id": id}
        row = self._conn.execute(query, params).mappings().first()
        return None if row is None else self._mapper.from_row(row)

    def get(self, id: str) -> T | None:
        return self._one(id, lock=False)

    def get_for_update(self, id: str) -> T | None:
        if not self._uow._write:
            raise self._read_only("get_for_update")
        return self._one(id, lock=True)

    def _read_only(self, operation: str) -> StorageError:
        # A write in a read-only unit of work would run inside SQLite's deferred BEGIN,
        # which fails at once with SQLITE_BUSY under contention; refuse it everywhere.
        return StorageError(
            f"{self._name}.{operation} refused: the unit of work is read-only "
            "(open it with write=True)"
        )

    def _write(
        self, statement: sa.Executable, params: dict[str, Any], item_id: str
    ) -> sa.CursorResult[Any]:
        try:
            if self._uow._storage.dialect == "postgresql":
                # PostgreSQL aborts the whole transaction on a failed statement; a
                # savepoint keeps the unit of work usable after a constraint violation.
                # SQLite only undoes the statement, so it needs none.
                with self._conn.begin_nested():
                    return self._conn.execute(statement, params)
            return self._conn.execute(statement, params)
        except exc.IntegrityError as error:
            fields = self._clash(error)
            what = "id" if fields == ("id",) else ", ".join(fields)
            raise Conflict(
                f"{self._name}: {what} of {item_id!r} already taken", field=fields[0]
            ) from error

    def _clash(self, error: exc.IntegrityError) -> tuple[str, ...]:
        """Which fields a unique violation was about, as the memory adapter reports."""
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if constraint:  # PostgreSQL names the constraint
            for key in self._uniques:
                if constraint == f"uq_{self._table.name}_{'_'.join(key)}":
                    return key
            return ("id",)
        # SQLite: "UNIQUE constraint failed: mc_x.tenant, mc_x.field"
        text = str(error.orig)
        if "constraint failed:" in text:
            columns = [part.strip().split(".")[-1] for part in text.split(":", 1)[1].split(",")]
            fields = tuple(c for c in columns if c != "tenant")
            if fields:
                return fields
        return ("id",)

    def add(self, item: T) -> None:
        if not self._uow._write:
            raise self._read_only("add")
        row = self._mapper.to_row(item)
        self._write(_statements(self._name).insert, {"tenant": self._uow.tenant, **row}, row["id"])

    def update(self, item: T) -> None:
        if not self._uow._write:
            raise self._read_only("update")
        row = self._mapper.to_row(item)
        params = {"_tenant": self._uow.tenant, "_id": row["id"], **row}
        if self._write(_statements(self._name).update, params, row["id"]).rowcount == 0:
            raise NotFound(self._name, row["id"], field="id")

    def delete(self, id: str) -> None:
        if not self._uow._write:
            raise self._read_only("delete")
        statement = self._table.delete().where(self._scoped(), self._table.c.id == id)
        if self._conn.execute(statement).rowcount == 0:
            raise NotFound(self._name, id, field="id")

    def find(
        self,
        where: Mapping[str, object] | None = None,
        *,
        contains: tuple[str, str] | None = None,
        order_by: Sequence[str] = (),
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[T]:
        shape, params = self._bound(where)
        ordered = tuple(order_by)
        for name in ordered:
            self._column(name)
        fold_field = None
        if contains is not None:
            fold_field = contains[0]
            self._column(fold_field)
            params["_pattern"] = "%" + _escape_like(contains[1].lower()) + "%"
        params["_offset"] = offset
        if limit is not None:
            params["_limit"] = limit

        def build() -> sa.Select[Any]:
            clauses = self._clauses(shape)
            if fold_field is not None:
                folded = self._uow._storage._fold(self._column(fold_field))
                clauses.append(folded.like(sa.bindparam("_pattern"), escape="\\"))
            order: list[Any] = []
            for name in ordered:
                column = self._column(name)
                key: Any = (
                    self._uow._storage._fold(column) if isinstance(column.type, sa.Text) else column
                )
                order.append(key.desc().nulls_last() if descending else key.asc().nulls_first())
            order.append(self._table.c.id.desc() if descending else self._table.c.id.asc())
            query = sa.select(self._table).where(*clauses).order_by(*order)
            query = query.offset(sa.bindparam("_offset", type_=sa.Integer))
            if limit is not None:
                query = query.limit(sa.bindparam("_limit", type_=sa.Integer))
            return query

        key = ("find", shape, fold_field, ordered, descending, limit is not None)
        rows = self._conn.execute(self._cached(key, build), params).mappings()
        return [self._mapper.from_row(row) for row in rows]

    def find_in(self, field: str, values: Sequence[object]) -> list[T]:
        if not values:
            return []
        column = self._column(field)

        def build() -> sa.Select[Any]:
            # No ORDER BY: sorting by id in SQL lets SQLite prefer walking the primary
            # key over the index on ``field``; the matches are few, so sort them here.
            return sa.select(self._table).where(
                self._table.c.tenant == sa.bindparam("_tenant"),
                column.in_(sa.bindparam("_values", expanding=True)),
            )

        params = {"_tenant": self._uow.tenant, "_values": [_plain(v) for v in values]}
        rows = self._conn.execute(self._cached(("in", field), build), params).mappings()
        return sorted((self._mapper.from_row(row) for row in rows), key=operator.attrgetter("id"))

    def find_due(
        self,
        field: str,
        at: datetime,
        where: Mapping[str, object] | None = None,
        *,
        after: datetime | None = None,
        limit: int | None = None,
        claim: bool = False,
    ) -> list[T]:
        if claim and not self._uow._write:
            raise self._read_only("find_due(claim=True)")
        column = self._column(field)
        shape, params = self._bound(where)
        params["_at"] = at
        if after is not None:
            params["_after"] = after
        if limit is not None:
            params["_limit"] = limit

        def build() -> sa.Select[Any]:
            bounds = [column.is_not(None), column <= sa.bindparam("_at", type_=column.type)]
            if after is not None:
                bounds.append(column > sa.bindparam("_after", type_=column.type))
            query = (
                sa.select(self._table)
                .where(*self._clauses(shape), *bounds)
                .order_by(column, self._table.c.id)
            )
            if limit is not None:
                query = query.limit(sa.bindparam("_limit", type_=sa.Integer))
            if claim:
                query = query.with_for_update(skip_locked=True)
            return query

        key = ("due", field, shape, after is not None, limit is not None, claim)
        rows = self._conn.execute(self._cached(key, build), params).mappings()
        return [self._mapper.from_row(row) for row in rows]

    def count(self, where: Mapping[str, object] | None = None) -> int:
        shape, params = self._bound(where)

        def build() -> sa.Select[Any]:
            return sa.select(sa.func.count()).select_from(self._table).where(*self._clauses(shape))

        return int(self._conn.execute(self._cached(("count", shape), build), params).scalar_one())


def _labelled(name: str, prefix: str) -> list[sa.Label[Any]]:
    return [column.label(prefix + column.name) for column in tables[name].c]


def _part(name: str, row: Sequence[Any], start: int) -> tuple[Any, int]:
    """The ``name`` record held in ``row`` from position ``start``, and where the next begins."""
    columns = _column_names(name)
    end = start + len(columns)
    return mappers[name].from_row(dict(zip(columns, row[start:end], strict=True))), end


@functools.cache
def _column_names(name: str) -> tuple[str, ...]:
    return tuple(column.name for column in tables[name].c)


def _access_facts_query(by_lesson: bool) -> sa.Select[Any]:
    """Member, product (through the lesson when ``by_lesson``) and the grants, in one query."""
    members, products = tables["members"], tables["products"]
    lessons, enrollments = tables["lessons"], tables["enrollments"]
    columns = [*_labelled("members", "m__"), *_labelled("products", "p__")]
    joined: Any = members
    if by_lesson:
        columns += _labelled("lessons", "l__")
        joined = joined.join(
            lessons,
            sa.and_(lessons.c.tenant == members.c.tenant, lessons.c.id == sa.bindparam("_lesson")),
        ).join(
            products,
            sa.and_(products.c.tenant == lessons.c.tenant, products.c.id == lessons.c.product_id),
        )
    else:
        joined = joined.join(
            products,
            sa.and_(
                products.c.tenant == members.c.tenant, products.c.id == sa.bindparam("_product")
            ),
        )
    columns += _labelled("enrollments", "e__")
    joined = joined.outerjoin(
        enrollments,
        sa.and_(
            enrollments.c.tenant == members.c.tenant,
            enrollments.c.member_id == members.c.id,
            enrollments.c.product_id == products.c.id,
        ),
    )
    return (
        sa.select(*columns)
        .select_from(joined)
        .where(members.c.tenant == sa.bindparam("_tenant"), members.c.id == sa.bindparam("_member"))
    )


_COLLECTION_NAMES = frozenset(collection.name for collection in COLLECTIONS)


class _UnitOfWork:
    def __init__(self, storage: SqlStorage, tenant: str, write: bool) -> None:
        self.tenant = tenant
        self._storage = storage
        #: Whether writes are allowed: a read-only unit of work refuses add, update,
        #: delete and the locking reads (get_for_update, find_due(claim=True)).
        self._write = write
        self._conn: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None

    def __getattr__(self, name: str) -> Any:
        # Repositories are made on first use: most units of work touch a few.
        if name in _COLLECTION_NAMES:
            repository = _Repository[Any](self, name)
            setattr(self, name, repository)
            return repository
        raise AttributeError(name)

    def _connection(self) -> sa.Connection:
        # The transaction begins lazily, so work after a commit runs in a new one.
        if self._conn is None:
            raise StorageError("unit of work used outside its 'with' block")
        if self._transaction is None:
            try:
                self._transaction = self._conn.begin()
            except exc.OperationalError as error:
                raise StorageError(f"could not begin a transaction: {error}") from error
        return self._conn

    def __enter__(self) -> Self:
        options = {"mc_write": self._write}
        self._conn = self._storage.engine.connect().execution_options(**options)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._transaction = None

    def access_facts(
        self,
        member_id: str,
        *,
        product_id: str | None = None,
        lesson_id: str | None = None,
    ) -> AccessFacts | None:
        by_lesson = lesson_id is not None
        key = ("access_facts", by_lesson)
        query = self._storage._queries.get(key)
        if query is None:
            query = self._storage._queries[key] = _access_facts_query(by_lesson)
        params: dict[str, Any] = {"_tenant": self.tenant, "_member": member_id}
        params["_lesson" if by_lesson else "_product"] = lesson_id if by_lesson else product_id
        rows = self._connection().execute(query, params).all()
        if not rows:
            return None
        # Columns come in the order the query lists them: member, product, lesson, grant.
        member, at = _part("members", rows[0], 0)
        product, at = _part("products", rows[0], at)
        lesson = None
        if by_lesson:
            lesson, at = _part("lessons", rows[0], at)
        id_at = at + _column_names("enrollments").index("id")
        enrollments = sorted(
            (_part("enrollments", row, at)[0] for row in rows if row[id_at] is not None),
            key=operator.attrgetter("id"),
        )
        return AccessFacts(member, product, lesson, tuple(enrollments))

    def commit(self) -> None:
        if self._conn is None:
            raise StorageError("commit outside of a unit of work (use it as a context manager)")
        if self._transaction is None:
            return  # nothing was done since the last commit
        transaction, self._transaction = self._transaction, None
        try:
            transaction.commit()
        except exc.IntegrityError as error:
            raise Conflict(f"commit refused by a constraint: {error.orig}") from error

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self._transaction = None


#: SQLSTATEs of a transaction the database rolled back because of another one.
_CONTENTION_STATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def _contention(context: Any) -> BaseException | None:
    """Report a deadlock or serialization failure as :class:`Contention`, not a driver error.

    Callers already retry a change that lost to a concurrent one; this lets
    them tell that case from a real failure, whatever statement hit it.
    """
    state = getattr(context.original_exception, "sqlstate", None)
    if state in _CONTENTION_STATES:
        return Contention(f"the database rolled back a transaction: {context.original_exception}")
    return None


def _enable_wal(cursor: Any) -> None:
    """Switch the database file to WAL mode (persistent, so usually already done).

    Switching needs an exclusive lock, and SQLite answers "database is locked"
    at once, without the busy handler, when connections opening a new file at
    the same moment contend for it; so wait and retry up to the busy timeout.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqlStorage:
    """Storage in a SQL database through SQLAlchemy Core.

    ``SqlStorage("sqlite:///portal.db")`` or ``SqlStorage("postgresql://...")``.
    The schema is created or migrated on open. SQLite runs in WAL mode, with
    a busy timeout, and opens every writing transaction with ``BEGIN
    IMMEDIATE`` so concurrent writers queue instead of failing.
    """

    def __init__(self, url: str, *, engine_options: Mapping[str, Any] | None = None) -> None:
        try:
            parsed = make_url(url)
        except exc.ArgumentError as error:
            raise ConfigurationError(f"not a database URL: {url!r}", field="url") from error
        backend = parsed.get_backend_name()
        options: dict[str, Any] = dict(engine_options or {})
        if backend == "sqlite":
            parsed = parsed.set(drivername="sqlite+pysqlite")
            options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT})
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            options.setdefault("pool_pre_ping", True)
        else:
            raise ConfigurationError(
                f"unsupported database {backend!r}: use sqlite or postgresql", field="url"
            )
        try:
            self.engine = sa.create_engine(parsed, **options)
        except ImportError as error:
            raise ConfigurationError(
                f"the {backend} driver is missing; install membership_core[postgres]",
                field="url",
            ) from error
        self.dialect = backend
        # Built statements by table and query shape (see _Repository._cached).
        self._queries: dict[tuple[Any, ...], Any] = {}
        event.listen(self.engine, "handle_error", _contention)
        if backend == "sqlite":
            self._setup_sqlite()
        try:
            migrate(self.engine)
        except exc.DBAPIError as error:
            self.engine.dispose()
            raise StorageError(f"cannot open the {backend} database: {error.orig}") from error
        except BaseException:
            self.engine.dispose()  # a refused open must not leak connections
            raise

    def _fold(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # SQLite's lower() only folds ASCII; Python's lower() matches PostgreSQL in UTF-8 locales.
        if self.dialect == "sqlite":
            return sa.func.mc_fold(column)
        return sa.func.lower(column)

    def _setup_sqlite(self) -> None:
        @event.listens_for(self.engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from pysqlite so BEGIN is ours to issue.
            dbapi_connection.isolation_level = None
            dbapi_connection.create_function(
                "mc_fold",
                1,
                lambda v: None if v is None else str(v).lower(),
                deterministic=True,
            )
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            _enable_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def on_begin(connection: sa.Connection) -> None:
            # A deferred transaction that later writes fails at once with SQLITE_BUSY,
            # ignoring the busy timeout; IMMEDIATE takes the write lock up front.
            write = connection.get_execution_options().get("mc_write", True)
            statement = "BEGIN IMMEDIATE" if write else "BEGIN"
            # Straight to the driver: a full SQLAlchemy execution of BEGIN costs more
            # than the short transactions it opens.
            try:
                connection.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
            except sqlite3.OperationalError as error:
                raise exc.OperationalError(statement, None, error) from error

    def unit_of_work(self, tenant: str, *, write: bool = True) -> UnitOfWork:
        """Open a unit of work in ``tenant`` (use it with ``with``)."""
        # Repositories are set per collection in __init__; the contract suite,
        # not a static declaration, proves they match the port.
        return cast(UnitOfWork, _UnitOfWork(self, tenant, write))

    def domain_holder(self, kind: str, name: str) -> str | None:
        """The tenant holding ``name`` of ``kind``: one indexed read (a unique key)."""
        claims = tables["domain_claims"]
        query = sa.select(claims.c.tenant).where(claims.c.id == kind, claims.c.name == name)
        with self.engine.connect().execution_options(mc_write=False) as connection:
            tenant = connection.execute(query).scalar()
        return None if tenant is None else str(tenant)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()
