"""The default resolver: the standard library's, through ``socket.getaddrinfo``.

The standard library has no DNS client: it can ask the operating system for a
name's addresses and canonical name, and nothing else. So this resolver

- reads **CNAME** records only as far as the system resolver tells:
  ``getaddrinfo(name, None, flags=AI_CANONNAME)`` gives the canonical name,
  the *end* of the CNAME chain, which is returned when it differs from
  ``name``. A custom domain whose CNAME points at a target that is itself a
  CNAME (a load balancer, a CDN) shows that last name instead, and a target
  without an address shows nothing at all. ``/etc/hosts`` and the system's
  search domains count too, and the system's timeouts apply;
- cannot read **TXT** records at all: it raises
  :class:`~membership_core.ports.dns.LookupUnsupported`, which the settings
  service reports as an ``"unchecked"`` record.

So with the default resolver a custom domain can never be fully verified.
Install ``membership_core[dns]`` and pass a
:class:`~membership_core.adapters.dns_python.DnspythonResolver`, or a resolver
of your own (the :class:`~membership_core.ports.dns.DnsResolver` port).
"""

from __future__ import annotations

import socket

from ..ports.dns import RECORD_TYPES, LookupFailed, LookupUnsupported

__all__ = ["StdlibResolver"]

#: getaddrinfo's answers for "this name has no address": not a failure.
_NO_SUCH_NAME = frozenset(
    code
    for code in (
        getattr(socket, "EAI_NONAME", None),
        getattr(socket, "EAI_NODATA", None),
        getattr(socket, "EAI_ADDRFAMILY", None),
    )
    if code is not None
)


class StdlibResolver:
    """A :class:`~membership_core.ports.dns.DnsResolver` on ``socket.getaddrinfo``.

    CNAME: the canonical name the system resolver reports, if it differs from
    the name (the end of the chain, not the direct target). TXT:
    :class:`~membership_core.ports.dns.LookupUnsupported`. See the module
    documentation for why, and what to use instead. Thread-safe: it keeps no
    state.
    """

    def lookup(self, name: str, record_type: str) -> tuple[str, ...]:
        """Return the canonical name of ``name`` for CNAME; TXT is unsupported."""
        if record_type not in RECORD_TYPES:
            raise ValueError(f"record_type must be CNAME or TXT, not {record_type!r}")
        if record_type == "TXT":
            raise LookupUnsupported(
                "reading TXT records needs dnspython: install membership_core[dns], "
                "or pass a resolver"
            )
        wanted = name.lower().removesuffix(".")
        try:
            answers = socket.getaddrinfo(wanted, None, flags=socket.AI_CANONNAME)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_NAME:
                return ()
            raise LookupFailed(f"looking up {wanted}: {error}") from error
        except (OSError, UnicodeError) as error:
            raise LookupFailed(f"looking up {wanted}: {error}") from error
        canonical = {answer[3].lower().removesuffix(".") for answer in answers if answer[3]} - {
            wanted
        }
        return tuple(sorted(canonical))
