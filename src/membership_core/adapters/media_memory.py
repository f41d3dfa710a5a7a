"""A media store in a dictionary, for tests and demos.

>>> store = MemoryMediaStore()
>>> store.put("default/branding/logo.png", b"\\x89PNG...", "image/png")
'memory://media/default/branding/logo.png'
>>> store.get("default/branding/logo.png")
b'\\x89PNG...'
>>> store.media_type("default/branding/logo.png")
'image/png'
"""

from __future__ import annotations

import threading

from ..ports.media import check_key
from ._media import check_base_url, check_put

__all__ = ["MemoryMediaStore"]


class MemoryMediaStore:
    """A :class:`~membership_core.ports.media.MediaStore` that keeps files in memory.

    URLs are ``base_url`` + ``/`` + key; nothing serves them, which is fine for
    tests that only compare URLs and bytes. Safe to share between threads.
    """

    # Deliberately no __len__: an empty store must stay truthy (``store or default``).

    def __init__(self, base_url: str = "memory://media") -> None:
        self._base_url = check_base_url(base_url)
        self._lock = threading.Lock()
        self._files: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, data: bytes, media_type: str) -> str:
        """Keep ``data`` under ``key`` (replacing what was there) and return its URL."""
        key, data, media_type = check_put(key, data, media_type)
        with self._lock:
            self._files[key] = (data, media_type)
        return self.url(key)

    def get(self, key: str) -> bytes | None:
        """The bytes kept under ``key``, or ``None``."""
        key = check_key(key)
        with self._lock:
            found = self._files.get(key)
        return None if found is None else found[0]

    def media_type(self, key: str) -> str | None:
        """The media type ``key`` was put with, or ``None`` when nothing is kept under it."""
        key = check_key(key)
        with self._lock:
            found = self._files.get(key)
        return None if found is None else found[1]

    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when nothing is kept under it."""
        key = check_key(key)
        with self._lock:
            self._files.pop(key, None)

    def url(self, key: str) -> str:
        """``base_url`` + ``/`` + ``key``."""
        return f"{self._base_url}/{check_key(key)}"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key with something kept under it, sorted."""
        with self._lock:
            return tuple(sorted(self._files))

    def __repr__(self) -> str:
        with self._lock:
            return f"MemoryMediaStore({self._base_url!r}, files={len(self._files)})"
