"""A fake DNS resolver for tests: :class:`FakeResolver` answers from records the test sets.

It implements the :class:`~membership_core.ports.dns.DnsResolver` port in
memory, so a host's tests can play the admin creating (or mistyping) DNS
records without a network:

>>> resolver = FakeResolver()
>>> resolver.set("learn.example.com", "CNAME", "portals.example.net.")
>>> resolver.lookup("Learn.Example.com.", "CNAME")
('portals.example.net',)
>>> resolver.lookup("learn.example.com", "TXT")
()
>>> resolver.fail("learn.example.com", "TXT")
>>> resolver.lookup("learn.example.com", "TXT")
Traceback (most recent call last):
...
membership_core.ports.dns.LookupFailed: the DNS server did not answer
>>> resolver.lookups[-1]
('learn.example.com', 'TXT')
"""

from __future__ import annotations

import threading

from ..ports.dns import RECORD_TYPES, LookupFailed, LookupUnsupported

__all__ = ["FakeResolver"]


def _name(name: str) -> str:
    return name.strip().lower().removesuffix(".")


def _record_type(record_type: str) -> str:
    if record_type not in RECORD_TYPES:
        raise ValueError(f"record_type must be CNAME or TXT, not {record_type!r}")
    return record_type


class FakeResolver:
    """A :class:`~membership_core.ports.dns.DnsResolver` answering from what the test set.

    Names are compared case-insensitively and without their trailing dot.
    Each (name, record type) holds a list of values: :meth:`set` replaces
    it, :meth:`clear` removes it (and any scripted failure); a name with none
    answers ``()``, as a real name without such a record does. Unlike real
    DNS, a CNAME is not followed: a TXT lookup at a name with a CNAME only
    sees TXT values set at that very name.

    :meth:`fail` and :meth:`unsupported` make lookups raise
    :class:`~membership_core.ports.dns.LookupFailed` and
    :class:`~membership_core.ports.dns.LookupUnsupported`. ``lookups`` lists
    every lookup, oldest first, as (name, record type) with the name
    normalized. Thread-safe: every method holds a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], tuple[str, ...]] = {}
        self._failures: dict[tuple[str, str], str] = {}
        self._unsupported: dict[str, str] = {}
        self.lookups: list[tuple[str, str]] = []

    def set(self, name: str, record_type: str, *values: str) -> None:
        """Make ``name`` hold exactly ``values`` as ``record_type`` records (none: no record).

        CNAME values lose their trailing dot, as the port returns them; TXT
        values are kept as given (one string per record, already joined).
        """
        key = (_name(name), _record_type(record_type))
        if record_type == "CNAME":
            values = tuple(value.removesuffix(".") for value in values)
        with self._lock:
            self._records[key] = tuple(values)

    def clear(self, name: str, record_type: str | None = None) -> None:
        """Remove ``name``'s records and scripted failures, of ``record_type`` or of every type."""
        types = RECORD_TYPES if record_type is None else {_record_type(record_type)}
        with self._lock:
            for kind in types:
                self._records.pop((_name(name), kind), None)
                self._failures.pop((_name(name), kind), None)

    def fail(
        self, name: str, record_type: str, message: str = "the DNS server did not answer"
    ) -> None:
        """Make every later lookup of ``record_type`` at ``name`` raise ``LookupFailed(message)``.

        Until :meth:`clear` of that name (and type).
        """
        key = (_name(name), _record_type(record_type))
        with self._lock:
            self._failures[key] = message

    def unsupported(self, record_type: str, message: str | None = None) -> None:
        """Make every later lookup of ``record_type`` raise ``LookupUnsupported``.

        ``message`` defaults to one naming the fake, so a test cannot mistake
        it for a real resolver's limit.
        """
        kind = _record_type(record_type)
        with self._lock:
            self._unsupported[kind] = (
                message or f"this FakeResolver was told it cannot read {kind} records"
            )

    def lookup(self, name: str, record_type: str) -> tuple[str, ...]:
        """Return the values set for ``record_type`` at ``name``, or raise what was scripted."""
        key = (_name(name), _record_type(record_type))
        with self._lock:
            self.lookups.append(key)
            if record_type in self._unsupported:
                raise LookupUnsupported(self._unsupported[record_type])
            if key in self._failures:
                raise LookupFailed(self._failures[key])
            return self._records.get(key, ())
