"""The Ids port: new opaque, prefixed, time-sortable identifiers."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Ids"]


class Ids(Protocol):
    """Makes new identifiers such as ``prod_01JD3...``."""

    def new(self, prefix: str) -> str:
        """Return a new id ``f"{prefix}_{...}"``, unique and sortable by creation time."""
        ...
