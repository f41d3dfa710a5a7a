"""The marker of partial updates: an argument left at ``UNSET`` is not changed."""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = ["UNSET"]


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: Marks an argument of a partial update as "leave unchanged" (``None`` may mean "clear").
UNSET: Final = _Unset.UNSET
_UnsetType = Literal[_Unset.UNSET]
