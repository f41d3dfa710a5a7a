"""Which portal a request is for, from the host name it came to.

A host serving many portals from one database routes each request by its
``Host`` header: a sub-domain of the platform names a portal, and so does a
verified custom domain. Both are unique in the database (see
:mod:`membership_core.services._domain_claims`), so the answer is one portal
or none.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import ValidationError
from .ports.storage import Storage

__all__ = ["tenant_for_host"]


def tenant_for_host(storage: Storage, host: str, *, platform_url: str) -> str | None:
    """The portal (tenant) a request to ``host`` is for, or ``None`` when none is.

    ``host`` is a ``Host`` header (case, a port and a trailing dot are
    ignored). ``<label>.<platform host>`` looks up the sub-domain ``label``;
    any other name looks up the verified custom domains. The platform's own
    host names no portal. Pass the ``platform_url`` the portals are opened with.

    >>> from membership_core.testing import make_test_portal
    >>> portal = make_test_portal(platform_url="https://members.example.net")
    >>> _ = portal.settings.update_domain(subdomain="acme")
    >>> tenant_for_host(portal.storage, "ACME.members.example.net:443",
    ...                 platform_url="https://members.example.net")
    'default'
    """
    if not isinstance(host, str):
        raise ValidationError("host", f"must be a string, not {type(host).__name__}")
    platform = (urlsplit(platform_url).hostname or "").lower()
    if not platform:
        raise ValidationError("platform_url", "must be an absolute URL with a host")
    # urlsplit drops the port and lowercases; IPv6 literals keep their brackets off.
    name = (urlsplit(f"//{host.strip()}").hostname or "").rstrip(".")
    if not name or name == platform:
        return None
    label, _, rest = name.partition(".")
    if rest == platform:
        return storage.domain_holder("subdomain", label)
    return storage.domain_holder("custom_domain", name)
