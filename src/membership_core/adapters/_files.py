"""Folders and files the file-based adapters (outbox mailer, media folder) share."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import ConfigurationError, ValidationError

__all__ = ["folder", "write_atomically"]


def folder(field: str, value: object, what: str, *, create: bool = True) -> Path:
    """``value`` as a folder path, checked; made now (with its parents) when ``create``.

    A non-path or blank value is a ``ValidationError`` on ``field``; a folder
    that cannot be made is a ``ConfigurationError`` naming ``what`` it is for.
    """
    if not isinstance(value, str | os.PathLike):
        raise ValidationError(field, f"must be a path, not {type(value).__name__}")
    if not str(value).strip():
        raise ValidationError(field, "must not be empty")
    path = Path(value)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the {what} folder {str(path)!r}: {exc}", field=field
            ) from exc
    return path


def write_atomically(target: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``target`` so readers see the old file or the whole new one.

    The temporary file lives in the same folder, since ``os.replace`` is atomic
    only within one file system; its leading dot and ``.tmp`` suffix say what
    it is if a crash leaves it behind (and keep globs like ``*.eml`` off it).
    """
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
