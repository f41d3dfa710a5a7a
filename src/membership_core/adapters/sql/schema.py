"""The SQL schema, derived from the storage port's collections.

Each collection becomes a table ``mc_<name>`` whose columns are the record's
attrs fields plus ``tenant``; the primary key is ``(tenant, id)`` and every
unique key and index is prefixed by ``tenant``, so one portal's rows can only
be reached together with its name. Plain fields map to typed columns; nested
values (money, tuples, dicts) to JSON through the library's converter.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from ...ports.storage import COLLECTIONS, Collection
from ...serialization import structure, unstructure

__all__ = ["TABLE_PREFIX", "RowMapper", "metadata", "schema_version_table", "tables"]

TABLE_PREFIX = "mc_"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    Stored as naive UTC so SQLite's text form sorts and compares correctly.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


_Kind = typing.Literal["plain", "enum", "json"]


def _column_type(tp: Any) -> tuple[sa.types.TypeEngine[Any], _Kind]:
    if tp is str:
        return sa.Text(), "plain"
    if tp is bool:
        return sa.Boolean(), "plain"
    if tp is int:
        return sa.BigInteger(), "plain"
    if tp is datetime:
        return UTCDateTime(), "plain"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return sa.String(64), "enum"
    return sa.JSON(), "json"


class RowMapper:
    """Turns records into row dicts and back, for one collection."""

    def __init__(self, collection: Collection[Any]) -> None:
        self.collection = collection
        hints = typing.get_type_hints(collection.type)
        self.fields: list[tuple[str, Any, _Kind, bool]] = []
        for field in attrs.fields(collection.type):
            tp, optional = _unwrap_optional(hints[field.name])
            self.fields.append((field.name, tp, _column_type(tp)[1], optional))
        self._build: Callable[..., Any] = collection.type

    def columns(self) -> list[sa.Column[Any]]:
        """The table's columns, ``tenant`` first."""
        cols: list[sa.Column[Any]] = [sa.Column("tenant", sa.String(64), nullable=False)]
        for name, tp, _kind, optional in self.fields:
            sql_type, _ = _column_type(tp)
            cols.append(sa.Column(name, sql_type, nullable=optional))
        return cols

    def to_row(self, item: object) -> dict[str, Any]:
        """The column values for ``item`` (without ``tenant``)."""
        row: dict[str, Any] = {}
        for name, _tp, kind, _optional in self.fields:
            value = getattr(item, name)
            if value is not None:
                if kind == "enum":
                    value = value.value
                elif kind == "json":
                    value = unstructure(value)
            row[name] = value
        return row

    def from_row(self, row: Mapping[Any, Any]) -> Any:
        """Rebuild the record from a row."""
        values: dict[str, Any] = {}
        for name, tp, kind, _optional in self.fields:
            value = row[name]
            if value is not None:
                if kind == "enum":
                    value = tp(value)
                elif kind == "json":
                    value = structure(value, tp)
            values[name] = value
        return self._build(**values)


metadata = sa.MetaData()
tables: dict[str, sa.Table] = {}
mappers: dict[str, RowMapper] = {}

for _collection in COLLECTIONS:
    _mapper = RowMapper(_collection)
    _name = TABLE_PREFIX + _collection.name
    _table = sa.Table(
        _name,
        metadata,
        *_mapper.columns(),
        sa.PrimaryKeyConstraint("tenant", "id", name=f"pk_{_name}"),
        *(
            sa.UniqueConstraint("tenant", *key, name=f"uq_{_name}_{'_'.join(key)}")
            for key in _collection.unique
        ),
        *(
            sa.UniqueConstraint(*key, name=f"uq_{_name}_{'_'.join(key)}")
            for key in _collection.unique_across_portals
        ),
    )
    for _key in _collection.indexes:
        # Ending with id serves equality lookups in id order (how find() sorts) from
        # the index alone; otherwise SQLite may prefer walking the primary key.
        sa.Index(
            f"ix_{_name}_{'_'.join(_key)}",
            _table.c.tenant,
            *(_table.c[k] for k in _key),
            _table.c.id,
        )
    tables[_collection.name] = _table
    mappers[_collection.name] = _mapper

schema_version_table = sa.Table(
    TABLE_PREFIX + "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)
