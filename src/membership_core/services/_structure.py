"""A portal's cache of course structures (categories and lessons), by structure version.

Every structural change of a product (a lesson added, moved, edited, removed;
categories added or reordered) increments ``Product.structure_version`` in the
same transaction. A reader that has just loaded the product therefore knows
whether its cached structure is current, in this process or after a change
made by any other one, and only loads categories and lessons on a miss.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..domain.catalog import Category, Lesson, Product
from ..ports.storage import UnitOfWork

__all__ = ["StructureCache"]


class StructureCache:
    """Categories and lessons of recently read products, keyed by product and version."""

    def __init__(self, size: int = 128) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[
            tuple[str, int], tuple[tuple[Category, ...], tuple[Lesson, ...]]
        ] = OrderedDict()

    def load(
        self, uow: UnitOfWork, product: Product
    ) -> tuple[tuple[Category, ...], tuple[Lesson, ...]]:
        """The product's categories and lessons, from the cache or from ``uow``."""
        key = (product.id, product.structure_version)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        categories = tuple(uow.categories.find({"product_id": product.id}))
        lessons = tuple(uow.lessons.find({"product_id": product.id}))
        with self._lock:
            self._entries[key] = (categories, lessons)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return categories, lessons
