"""A media store that keeps files in a folder: the embedded default.

Each key is a relative path under the root folder (``default/branding/logo.png``
is ``<root>/default/branding/logo.png``), so the folder can be served as it is
by the host's web server or a CDN; ``base_url`` tells the store where that is.
Without it, URLs are ``file://`` URIs, which suit a single machine and tests.

Files are replaced atomically (a temporary file in the same folder, then
``os.replace``), so a page never links to a half-written logo, and a failed
write leaves the previous file as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StorageError
from ..ports.media import check_key
from ._files import folder, write_atomically
from ._media import check_base_url, check_put

__all__ = ["FolderMediaStore"]

# Media is public: readable by the web server that serves the folder.
_FILE_MODE = 0o644


class FolderMediaStore:
    """A :class:`~membership_core.ports.media.MediaStore` writing files under ``root``.

    ``root`` is created (with its parents) if missing, at once or, with
    ``create=False``, when the first file is written; sub-folders are created
    as keys need them. URLs are ``base_url`` + ``/`` + key, or the file's
    ``file://`` URI when there is no ``base_url``. On a case-insensitive file
    system, keys that differ only in case name the same file.

    Safe to share between threads and processes: each put writes its own
    temporary file and renames it into place.
    """

    def __init__(
        self, root: str | os.PathLike[str], base_url: str | None = None, *, create: bool = True
    ) -> None:
        self._root = folder("root", root, "media", create=create).absolute()
        self._base_url = None if base_url is None else check_base_url(base_url)

    @property
    def root(self) -> Path:
        """The folder files are written under (absolute)."""
        return self._root

    def path_for(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``."""
        return self._root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes, media_type: str) -> str:
        """Write ``data`` to :meth:`path_for` ``key``, replacing any earlier file; return the URL.

        ``media_type`` is checked but not kept: the web server serving the
        folder chooses it from the file's extension. Raises
        :class:`~membership_core.errors.StorageError` if the file cannot be
        written (disk full, a file where a folder is needed, ...).
        """
        key, data, media_type = check_put(key, data, media_type)
        target = self.path_for(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data, mode=_FILE_MODE)
        except OSError as exc:
            raise StorageError(f"cannot write media {key!r} to {str(target)!r}: {exc}") from exc
        return self.url(key)

    def get(self, key: str) -> bytes | None:
        """The bytes of the file of ``key``, or ``None`` when there is no such file."""
        target = self.path_for(key)
        if not target.is_file():
            return None
        try:
            return target.read_bytes()
        except FileNotFoundError:  # deleted between the check and the read
            return None
        except OSError as exc:
            raise StorageError(f"cannot read media {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Remove the file of ``key``; nothing happens when there is none."""
        target = self.path_for(key)
        if not target.is_file():
            return
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete media {key!r}: {exc}") from exc

    def url(self, key: str) -> str:
        """``base_url`` + ``/`` + ``key``, or the ``file://`` URI of the file."""
        if self._base_url is None:
            return self.path_for(key).as_uri()
        return f"{self._base_url}/{check_key(key)}"

    def __repr__(self) -> str:
        return f"FolderMediaStore({str(self._root)!r}, base_url={self._base_url!r})"
