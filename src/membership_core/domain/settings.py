"""Portal settings values."""

from __future__ import annotations

import attrs

__all__ = ["SiteSettings"]


@attrs.frozen
class SiteSettings:
    """Site info: the portal's title, the base URL members use, timezone and currency.

    ``id`` is always ``"site"``: one record per portal.
    """

    id: str = "site"
    title: str = "Membership Portal"
    base_url: str = "https://members.example.com"
    timezone: str = "UTC"
    currency: str = "USD"
    support_email: str | None = None
    sender_name: str | None = None
    sender_email: str = "no-reply@members.example.com"
