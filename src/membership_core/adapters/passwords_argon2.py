"""argon2id password hashing through argon2-cffi (``membership_core[security]``)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError

__all__ = ["Argon2Hasher", "MIN_MEMORY_KIB", "MIN_TIME_COST"]

#: OWASP's floor for argon2id: 19 MiB of memory and 2 iterations with 1 lane.
MIN_MEMORY_KIB = 19456
MIN_TIME_COST = 2


class Argon2Hasher:
    """argon2id with RFC 9106's low-memory profile (64 MiB, t=3, p=4) by default.

    Parameters below OWASP's floor (``memory_kib`` 19456, ``time_cost`` 2)
    are refused. Hashes are PHC strings; :meth:`needs_rehash` is true for
    hashes made with other parameters, so raising the policy upgrades each
    member's hash at their next login.
    """

    def __init__(
        self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4
    ) -> None:
        try:
            import argon2
        except ImportError as error:  # pragma: no cover - the security extra is installed in CI
            raise ConfigurationError(
                "password hashing needs argon2-cffi: install membership_core[security]"
            ) from error
        if memory_kib < MIN_MEMORY_KIB or time_cost < MIN_TIME_COST or parallelism < 1:
            raise ConfigurationError(
                f"argon2 parameters below OWASP's floor (m={MIN_MEMORY_KIB} KiB, "
                f"t={MIN_TIME_COST}, p=1)"
            )
        self._argon2: Any = argon2
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        """A new argon2id hash of ``password``."""
        return str(self._hasher.hash(password))

    def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches; ``False`` (not an error) for a mismatch."""
        try:
            return bool(self._hasher.verify(stored, password))
        except (
            self._argon2.exceptions.VerificationError,
            self._argon2.exceptions.InvalidHashError,
        ):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` used other parameters than this hasher's."""
        try:
            return bool(self._hasher.check_needs_rehash(stored))
        except self._argon2.exceptions.InvalidHashError:
            return True
