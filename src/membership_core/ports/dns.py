"""The DnsResolver port: read the CNAME and TXT records that prove a portal's custom domain.

A resolver only reads what DNS says now; it neither caches nor judges. The
settings service compares what it returns with the wanted records
(:func:`~membership_core.domain.domains.check_record`) and turns the two
exceptions below into a check's ``"unchecked"`` and ``"error"`` statuses.

Adapters: :class:`~membership_core.adapters.dns_stdlib.StdlibResolver` (the
default; CNAME only), :class:`~membership_core.adapters.dns_python.DnspythonResolver`
(``membership_core[dns]``; CNAME and TXT) and, for tests,
:class:`~membership_core.testing.dns.FakeResolver`.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RECORD_TYPES", "DnsResolver", "LookupFailed", "LookupUnsupported"]

#: The record types a resolver is asked for.
RECORD_TYPES: frozenset[str] = frozenset({"CNAME", "TXT"})


class LookupUnsupported(Exception):
    """This resolver cannot read this record type at all; the message says what to install.

    Asking again will not help; a different resolver will.
    """


class LookupFailed(Exception):
    """The lookup did not get an answer (a timeout, a server failure); trying later may help.

    A name that has no such record is not a failure: the lookup returns ``()``.
    """


class DnsResolver(Protocol):
    """Reads DNS records of one type at one name.

    Implementations must be safe to call from several threads at once and
    should not cache answers: an admin who just created a record and clicks
    "verify" again expects it to be seen.
    """

    def lookup(self, name: str, record_type: str) -> tuple[str, ...]:
        """Return the values of the ``record_type`` records at ``name``.

        ``name`` is an ASCII host name without trailing dot (as
        :func:`~membership_core.domain.domains.normalize_custom_domain`
        returns it); ``record_type`` is ``"CNAME"`` or ``"TXT"`` (anything
        else: ``ValueError``). CNAME values are the name's own targets (not
        the end of a chain) without the trailing dot; TXT values are one
        string per record, a record's several strings joined with nothing
        between them. ``()`` when the name has no such record or does not
        exist (NOERROR with no answer, NXDOMAIN).

        Raises :class:`LookupUnsupported` when this resolver cannot read
        ``record_type``, and :class:`LookupFailed` when it got no answer.
        """
        ...
