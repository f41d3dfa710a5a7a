"""Test helpers: portals on every back end and a ready-made course."""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa

from membership_core import Lesson, Offer, Portal, Product
from membership_core.adapters.memory_storage import MemoryStorage
from membership_core.adapters.sql.schema import tables
from membership_core.ports.storage import COLLECTIONS

#: Every row of every collection, by collection name, in a stable order.
Snapshot = dict[str, list[tuple[str, ...]]]


def snapshot(portal: Portal, tenant: str | None = None) -> Snapshot:
    """Every stored row of every collection (of ``tenant`` only, if given).

    Works on SQL storage (the tables themselves) and on memory storage (its
    committed rows), so "a failed call leaves storage as it was" can be
    asserted on every back end.
    """
    storage: Any = portal.storage
    if isinstance(storage, MemoryStorage):
        tenants = storage._tenants.items()
        return {
            collection.name: sorted(
                (name, repr(row))
                for name, collections in tenants
                if tenant is None or name == tenant
                for row in collections.get(collection.name, {}).values()
            )
            for collection in COLLECTIONS
        }
    with storage.engine.connect() as connection:
        result: Snapshot = {}
        for collection in COLLECTIONS:
            table = tables[collection.name]
            query = sa.select(table)
            if tenant is not None:
                query = query.where(table.c.tenant == tenant)
            result[collection.name] = sorted(
                tuple(map(repr, row)) for row in connection.execute(query)
            )
        return result


class Course(NamedTuple):
    product: Product
    lessons: list[Lesson]
    offer: Offer


def build_course(portal: Portal, *, lessons: int = 3, title: str = "Python 101") -> Course:
    """A published product with one category per two lessons and a published free offer."""
    product = portal.catalog.create_product(title)
    made: list[Lesson] = []
    category = None
    for index in range(lessons):
        if index % 2 == 0:
            category = portal.catalog.add_category(product.id, f"Module {index // 2 + 1}")
        assert category is not None
        made.append(portal.catalog.add_lesson(product.id, category.id, f"Lesson {index + 1}"))
    product = portal.catalog.publish_product(product.id)
    offer = portal.offers.create_offer(f"{title} (free)", [product.id])
    offer = portal.offers.publish(offer.id)
    return Course(product, made, offer)
