"""A resolver that reads CNAME and TXT records with dnspython (``membership_core[dns]``).

Why dnspython: it is the DNS toolkit of Python (ISC licensed, pure Python,
no dependencies, maintained since 2003), and a real DNS client, unlike the
standard library, so it reads TXT records and a name's own CNAME (not the end
of its chain) from the servers you choose.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from .._optional import load
from ..errors import ConfigurationError
from ..ports.dns import RECORD_TYPES, LookupFailed

__all__ = ["DnspythonResolver"]


class DnspythonResolver:
    """A :class:`~membership_core.ports.dns.DnsResolver` on dnspython's stub resolver.

    ``nameservers`` are the IP addresses of the DNS servers to ask (all on
    ``port``); ``None`` uses the system's (``/etc/resolv.conf`` on POSIX).
    ``timeout`` bounds one whole lookup, in seconds. Answers are not cached,
    and the system's search domains are not used: names are absolute.

    A name without such a record, or that does not exist, gives ``()``; a
    timeout, or servers that fail (SERVFAIL, refused) or cannot be reached,
    raise :class:`~membership_core.ports.dns.LookupFailed`. TXT strings are
    decoded as UTF-8 (invalid bytes replaced). One resolver may be shared by
    several threads: a lookup reads its configuration without changing it.

    :class:`~membership_core.errors.ConfigurationError` if dnspython is not
    installed, the system has no resolver configuration, or a name server is
    not an IP address.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 5.0,
    ) -> None:
        load("dns", "DnspythonResolver")
        self._dns: dict[str, Any] = {
            name: importlib.import_module(f"dns.{name}") for name in ("exception", "resolver")
        }
        resolver_module = self._dns["resolver"]
        if isinstance(nameservers, str):
            raise ConfigurationError("nameservers must be a list of addresses, not one string")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        try:
            if nameservers is None:
                resolver = resolver_module.Resolver()
            else:
                resolver = resolver_module.Resolver(configure=False)
                resolver.nameservers = list(nameservers)
        except (ValueError, self._dns["exception"].DNSException) as error:
            raise ConfigurationError(f"DnspythonResolver: {error}") from error
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = None
        self._resolver = resolver

    def lookup(self, name: str, record_type: str) -> tuple[str, ...]:
        """Return the values of the ``record_type`` records at ``name`` (see the port)."""
        if record_type not in RECORD_TYPES:
            raise ValueError(f"record_type must be CNAME or TXT, not {record_type!r}")
        resolver_module = self._dns["resolver"]
        wanted = name.lower().removesuffix(".")
        try:
            answer = self._resolver.resolve(wanted, record_type, search=False)
        except (resolver_module.NXDOMAIN, resolver_module.NoAnswer):
            return ()
        except self._dns["exception"].Timeout as error:
            raise LookupFailed(f"looking up {record_type} {wanted}: timed out") from error
        except self._dns["exception"].DNSException as error:
            raise LookupFailed(f"looking up {record_type} {wanted}: {error}") from error
        if record_type == "CNAME":
            return tuple(str(rdata.target.to_text(omit_final_dot=True)) for rdata in answer)
        return tuple(b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer)
