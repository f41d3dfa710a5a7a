"""In-memory storage: the whole contract of the storage port, kept in dicts.

Meant for tests and throwaway demos. Units of work are serialized by one lock
(like SQLite's single writer) and work on copies, so a rollback really
discards every change. A read-only unit of work (``write=False``) refuses every
write, so it reads the committed rows as they are, without copying them.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast

from ..errors import Conflict, NotFound, StorageError
from ..ports.storage import (
    COLLECTIONS,
    AccessFacts,
    Collection,
    Repositories,
    UnitOfWork,
    read_access_facts,
)

__all__ = ["MemoryStorage"]

T = TypeVar("T")

_LOCK_TIMEOUT_SECONDS = 30.0


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _sort_key(value: object) -> tuple[int, Any]:
    # None sorts first, as it does in SQLite (PostgreSQL is told NULLS FIRST to match).
    value = _plain(value)
    return (0, "") if value is None else (1, value)


class _Repository(Generic[T]):
    def __init__(
        self,
        collection: Collection[T],
        rows: dict[str, T],
        write: bool,
        elsewhere: Callable[[], list[dict[str, T]]] = list,
    ) -> None:
        self._collection = collection
        self._rows = rows
        self._writable = write
        # The committed rows of this collection in the other portals (for
        # unique_across_portals keys; the storage lock keeps them still).
        self._elsewhere = elsewhere

    def _read_only(self, operation: str) -> StorageError:
        return StorageError(
            f"{self._collection.name}.{operation} refused: the unit of work is read-only "
            "(open it with write=True)"
        )

    def _unique_clash(self, item: T) -> tuple[str, ...] | None:
        for key in self._collection.unique:
            values = tuple(_plain(getattr(item, name)) for name in key)
            if any(value is None for value in values):
                continue  # NULLs never clash, as in SQL
            for other_id, other in self._rows.items():
                if other_id == item.id:  # type: ignore[attr-defined]
                    continue
                if tuple(_plain(getattr(other, name)) for name in key) == values:
                    return key
        for key in self._collection.unique_across_portals:
            values = tuple(_plain(getattr(item, name)) for name in key)
            if any(value is None for value in values):
                continue
            own_id = cast(Any, item).id
            for rows in [self._rows, *self._elsewhere()]:
                for other_id, other in rows.items():
                    if rows is self._rows and other_id == own_id:
                        continue
                    if tuple(_plain(getattr(other, name)) for name in key) == values:
                        return key
        return None

    def get(self, id: str) -> T | None:
        return self._rows.get(id)

    def get_for_update(self, id: str) -> T | None:
        if not self._writable:
            raise self._read_only("get_for_update")
        return self._rows.get(id)

    def add(self, item: T) -> None:
        if not self._writable:
            raise self._read_only("add")
        item_id: str = item.id  # type: ignore[attr-defined]
        if item_id in self._rows:
            raise Conflict(f"{self._collection.name}: id {item_id!r} already exists", field="id")
        clash = self._unique_clash(item)
        if clash:
            raise Conflict(
                f"{self._collection.name}: {', '.join(clash)} already taken", field=clash[0]
            )
        self._rows[item_id] = item

    def update(self, item: T) -> None:
        if not self._writable:
            raise self._read_only("update")
        item_id: str = item.id  # type: ignore[attr-defined]
        if item_id not in self._rows:
            raise NotFound(self._collection.name, item_id, field="id")
        clash = self._unique_clash(item)
        if clash:
            raise Conflict(
                f"{self._collection.name}: {', '.join(clash)} already taken", field=clash[0]
            )
        self._rows[item_id] = item

    def delete(self, id: str) -> None:
        if not self._writable:
            raise self._read_only("delete")
        if self._rows.pop(id, None) is None:
            raise NotFound(self._collection.name, id, field="id")

    def _matching(
        self, where: Mapping[str, object] | None, contains: tuple[str, str] | None
    ) -> list[T]:
        conditions = [(name, _plain(value)) for name, value in (where or {}).items()]
        needle = contains[1].lower() if contains else ""
        found = []
        for row in self._rows.values():
            if any(_plain(getattr(row, name)) != value for name, value in conditions):
                continue
            if contains is not None:
                haystack = getattr(row, contains[0])
                if haystack is None or needle not in str(haystack).lower():
                    continue
            found.append(row)
        return found

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
        found = self._matching(where, contains)

        def key(row: T) -> tuple[Any, ...]:
            parts: list[Any] = []
            for name in order_by:
                value = getattr(row, name)
                parts.append(_sort_key(value.lower() if isinstance(value, str) else value))
            parts.append(row.id)  # type: ignore[attr-defined]
            return tuple(parts)

        found.sort(key=key, reverse=descending)
        end = None if limit is None else offset + limit
        return found[offset:end]

    def find_in(self, field: str, values: Sequence[object]) -> list[T]:
        wanted = {_plain(value) for value in values}
        found = [row for row in self._rows.values() if _plain(getattr(row, field)) in wanted]
        return sorted(found, key=lambda row: row.id)  # type: ignore[attr-defined]

    def count(self, where: Mapping[str, object] | None = None) -> int:
        return len(self._matching(where, None))

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
        if claim and not self._writable:
            raise self._read_only("find_due(claim=True)")
        due = [
            row
            for row in self._matching(where, None)
            if getattr(row, field) is not None
            and getattr(row, field) <= at
            and (after is None or getattr(row, field) > after)
        ]
        due.sort(key=lambda row: (getattr(row, field), row.id))  # type: ignore[attr-defined]
        return due if limit is None else due[:limit]


class _UnitOfWork:
    def __init__(self, storage: MemoryStorage, tenant: str, write: bool) -> None:
        self.tenant = tenant
        self._storage = storage
        self._write = write
        self._working: dict[str, dict[str, Any]] | None = None
        self._entered = False

    def __enter__(self) -> Self:
        if not self._storage._lock.acquire(timeout=_LOCK_TIMEOUT_SECONDS):
            raise StorageError("memory storage: timed out waiting for another unit of work")
        self._entered = True
        tables = self._storage._tenants.setdefault(self.tenant, {})
        if self._write:
            self._working = {c.name: dict(tables.get(c.name, {})) for c in COLLECTIONS}
        else:  # nothing can change them: read the committed rows in place
            self._working = {c.name: tables.get(c.name, {}) for c in COLLECTIONS}
        for collection in COLLECTIONS:
            rows = self._working[collection.name]
            repository = _Repository(collection, rows, self._write, self._elsewhere(collection))
            setattr(self, collection.name, repository)
        return self

    def _elsewhere(self, collection: Collection[Any]) -> Callable[[], list[dict[str, Any]]]:
        def rows() -> list[dict[str, Any]]:
            return [
                tables.get(collection.name, {})
                for tenant, tables in self._storage._tenants.items()
                if tenant != self.tenant
            ]

        return rows

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._working = None
        self._entered = False
        self._storage._lock.release()

    def access_facts(
        self,
        member_id: str,
        *,
        product_id: str | None = None,
        lesson_id: str | None = None,
    ) -> AccessFacts | None:
        return read_access_facts(
            cast(Repositories, self), member_id, product_id=product_id, lesson_id=lesson_id
        )

    def commit(self) -> None:
        if self._working is None:
            raise StorageError("commit outside of a unit of work (use it as a context manager)")
        if not self._write:
            return  # nothing to make durable
        self._storage._tenants[self.tenant] = {
            name: dict(rows) for name, rows in self._working.items()
        }

    def rollback(self) -> None:
        if self._working is None or not self._write:
            return  # a read-only unit of work holds the committed rows themselves
        tables = self._storage._tenants.get(self.tenant, {})
        for collection in COLLECTIONS:
            rows = self._working[collection.name]
            rows.clear()
            rows.update(tables.get(collection.name, {}))


class MemoryStorage:
    """Storage kept in this process's memory; lost when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, dict[str, dict[str, Any]]] = {}

    def unit_of_work(self, tenant: str, *, write: bool = True) -> UnitOfWork:
        """Open a unit of work in ``tenant`` (use it with ``with``)."""
        # Repositories are set per collection on entry; the contract suite,
        # not a static declaration, proves they match the port.
        return cast(UnitOfWork, _UnitOfWork(self, tenant, write))

    def domain_holder(self, kind: str, name: str) -> str | None:
        """The tenant holding ``name`` of ``kind`` (committed rows only).

        Reads without the units of work's lock (a request router must not wait
        for, or deadlock with, a unit of work): a commit replaces a tenant's
        tables whole, so the copy taken here is always some committed state.
        """
        for tenant, tables in list(self._tenants.items()):
            claim = tables.get("domain_claims", {}).get(kind)
            if claim is not None and claim.name == name:
                return tenant
        return None

    def close(self) -> None:
        """Nothing to release."""
