"""The password hashing port: slow, salted, and upgradable.

The library never stores a password, only what a :class:`PasswordHasher`
makes of it (a PHC string such as ``$argon2id$v=19$m=65536,t=3,p=4$...``).
The built-in adapter is argon2id through argon2-cffi
(``membership_core[security]``); a host with its own policy plugs in another.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["PasswordHasher"]


class PasswordHasher(Protocol):
    """Hashes and verifies passwords."""

    def hash(self, password: str) -> str:
        """A new salted hash of ``password`` (a self-describing string)."""
        ...

    def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored``; never raises for a mismatch.

        Must take as long for a mismatch as for a match (the library relies
        on it to not reveal which emails have accounts).
        """
        ...

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with weaker parameters than today's."""
        ...
