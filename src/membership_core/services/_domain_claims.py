"""A portal's hold on its host names, and the DNS proof of a custom domain.

A sub-domain, and a custom domain once verified, name one portal of the
database: each is a :class:`~membership_core.domain.settings.DomainClaim`
row whose key is unique across portals, so the database itself refuses a
second holder, also between processes.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlsplit

import attrs

from ..domain.domains import DnsRecord, RecordCheck, check_record, verification_records
from ..domain.settings import DomainClaim, DomainSettings
from ..errors import Conflict
from ..ports.dns import DnsResolver, LookupFailed, LookupUnsupported
from ..ports.storage import UnitOfWork

__all__ = ["check", "claim", "records", "release", "with_custom_domain", "with_subdomain"]


def claim(uow: UnitOfWork, kind: str, name: str, *, field: str, now: datetime) -> None:
    """Hold ``name`` (of ``kind``) for this portal, instead of what it held; ``Conflict``
    naming ``field`` when another portal holds it."""
    release(uow, kind)
    try:
        uow.domain_claims.add(DomainClaim(kind, name, now))
    except Conflict:
        raise Conflict(f"{field}: {name!r} is taken by another portal", field=field) from None


def release(uow: UnitOfWork, kind: str) -> None:
    """Let go of this portal's name of ``kind``, if it holds one."""
    if uow.domain_claims.get_for_update(kind) is not None:
        uow.domain_claims.delete(kind)


def with_subdomain(
    uow: UnitOfWork, domain: DomainSettings, label: str | None, *, field: str, now: datetime
) -> DomainSettings:
    """``domain`` with the sub-domain ``label``, held for this portal (``None``: none)."""
    if label == domain.subdomain:
        return domain
    if label is None:
        release(uow, "subdomain")
    else:
        claim(uow, "subdomain", label, field=field, now=now)
    return attrs.evolve(domain, subdomain=label)


def with_custom_domain(
    uow: UnitOfWork, domain: DomainSettings, host: str | None, *, field: str, now: datetime
) -> DomainSettings:
    """``domain`` with the custom domain ``host``, unverified, with a new token.

    Typing a domain claims nothing (nobody can block another portal's domain
    by entering it first); one that another portal has verified is refused.
    """
    if host == domain.custom_domain:
        return domain
    release(uow, "custom_domain")
    if host is not None:  # free? claim it, then let go until it is verified
        claim(uow, "custom_domain", host, field=field, now=now)
        release(uow, "custom_domain")
    token = None if host is None else secrets.token_hex(16)
    return attrs.evolve(domain, custom_domain=host, verification_token=token, verified_at=None)


def records(domain: DomainSettings, platform_url: str) -> tuple[DnsRecord, ...]:
    """The CNAME and TXT records that prove ``domain``'s custom domain.

    The CNAME points at the portal's own host on the platform: its sub-domain
    under ``platform_url``, or the platform's host.
    """
    portal_url = DomainSettings(subdomain=domain.subdomain).base_url(platform_url)
    return verification_records(
        domain.custom_domain or "",
        cname_target=urlsplit(portal_url).hostname or "",
        token=domain.verification_token or "",
    )


def check(resolver: DnsResolver, record: DnsRecord) -> RecordCheck:
    """Look ``record`` up through ``resolver`` and say how it compares."""
    try:
        found = resolver.lookup(record.name, record.type)
    except LookupUnsupported as error:
        return check_record(record, None, unchecked=str(error))
    except LookupFailed as error:
        return check_record(record, None, error=str(error))
    return check_record(record, found)
