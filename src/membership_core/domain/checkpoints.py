"""Where a piece of incremental scheduled work left off. Pure value."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["Checkpoint"]


@attrs.frozen
class Checkpoint:
    """How far a scan that ``tick()`` does a little at a time has got.

    ``id`` names the scan (e.g. ``"reconcile"``); ``position`` is how many
    records it has passed in its order; it starts again at 0 once through.
    """

    id: str
    position: int
    updated_at: datetime
