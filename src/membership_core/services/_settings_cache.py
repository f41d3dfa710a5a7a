"""The portal's settings, cached in this process and checked against storage on every read.

Why a stamp: settings are read by nearly every email, link and page, and
rebuilding the whole nested value from its row costs more than the query. A
tiny stamp row carries the version; while it matches the cached copy, that
copy is the settings. Another process's change bumps the stamp in the same
transaction as the settings, so a reader sees it on its very next read.
"""

from __future__ import annotations

import threading

from ..domain.settings import PortalSettings
from ..ports.storage import UnitOfWork

__all__ = ["SettingsCache"]


class SettingsCache:
    """One portal's :class:`PortalSettings`, shared by its services and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: PortalSettings | None = None

    def read(self, uow: UnitOfWork) -> PortalSettings:
        """The settings as committed, read through ``uow`` (one small query when cached).

        The stamp is read before the settings: whatever row follows is at least
        that new, and is cached under its own version, never a later one.
        """
        stamp = uow.settings_stamps.get("portal")
        version = 0 if stamp is None else stamp.version
        cached = self._value
        if cached is not None and cached.version == version:
            return cached
        value = uow.portal_settings.get("portal") or PortalSettings()
        self.put(value)
        return value

    def put(self, value: PortalSettings) -> None:
        """Remember ``value`` (committed) unless a newer version is already cached."""
        with self._lock:
            if self._value is None or value.version >= self._value.version:
                self._value = value
