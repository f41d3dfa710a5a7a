"""SQL storage on SQLAlchemy Core: SQLite (the embedded default) and PostgreSQL."""

from .storage import SqlStorage

__all__ = ["SqlStorage"]
