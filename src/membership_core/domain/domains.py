"""A portal's addresses: its sub-domain of the platform, its custom domain, and their DNS proof.

Pure rules, no I/O: the settings service calls them and looks the records up
through the :class:`~membership_core.ports.dns.DnsResolver` port.

>>> normalize_subdomain("  Piano-School ")
'piano-school'
>>> normalize_custom_domain("Bücher.Example.com.", platform_host="members.example.net")
'xn--bcher-kva.example.com'
>>> target = "portals.example.net"
>>> cname, txt = verification_records("learn.example.com", cname_target=target, token="t0k3n")
>>> txt.name, txt.value
('_membership-verification.learn.example.com', 'membership-verification=t0k3n')
>>> check_record(cname, ("Portals.Example.NET.",)).status
'ok'
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

import attrs

from ..errors import ConfigurationError, ValidationError

__all__ = [
    "RESERVED_SUBDOMAINS",
    "SPECIAL_USE_SUFFIXES",
    "TXT_RECORD_PREFIX",
    "DnsRecord",
    "RecordCheck",
    "RecordStatus",
    "check_record",
    "normalize_custom_domain",
    "normalize_subdomain",
    "verification_records",
]

#: Sub-domains no portal may take: they name the platform's own services, are
#: looked up by mail clients and browsers on their own, or would pass for an
#: official page of the platform (a phishing portal at ``login.`` or ``billing.``).
RESERVED_SUBDOMAINS: frozenset[str] = frozenset(
    {
        # The web site and its API.
        *("www", "www1", "www2", "web", "api", "app", "apps", "admin", "administrator"),
        *("dashboard", "console", "portal", "portals", "domains", "domain", "root", "system"),
        # Mail, and the names mail clients look up by themselves (autoconfig,
        # autodiscover, MTA-STS per RFC 8461); RFC 2142 role names.
        *("mail", "email", "webmail", "smtp", "imap", "pop", "pop3", "mx", "mta-sts"),
        *("autoconfig", "autodiscover", "postmaster", "hostmaster", "webmaster", "abuse"),
        # Name servers and network plumbing (wpad and isatap are looked up by
        # clients on their own, so whoever holds them can steer their traffic).
        *("ns", "ns1", "ns2", "ns3", "ns4", "dns", "ftp", "sftp", "vpn", "proxy", "wpad"),
        *("isatap", "localhost", "gateway"),
        # Files served by the platform.
        *("cdn", "static", "assets", "media", "images", "img", "files", "uploads", "download"),
        # Pages that would look official.
        *("status", "help", "support", "docs", "blog", "news", "security", "legal", "about"),
        *("login", "logout", "signin", "signup", "register", "auth", "oauth", "sso", "id"),
        *("account", "accounts", "my", "billing", "pay", "payment", "payments", "checkout"),
        *("invoice", "invoices", "webhook", "webhooks"),
        # Environments.
        *("dev", "staging", "stage", "test", "demo", "sandbox", "internal"),
    }
)

#: Top-level names that are never public web addresses, and where that is written.
#: ``example.com``, ``example.net`` and ``example.org`` (RFC 6761 §6.5) are *not*
#: here: they resolve, so documentation and tests may use them.
SPECIAL_USE_SUFFIXES: dict[str, str] = {
    "localhost": "RFC 6761: the machine itself",
    "localdomain": "a common name for the local network",
    "local": "RFC 6762: multicast DNS on the local network",
    "invalid": "RFC 6761: guaranteed never to exist",
    "test": "RFC 6761: reserved for testing, never delegated",
    "onion": "RFC 7686: Tor onion services",
    "alt": "RFC 9476: for non-DNS name systems",
    "arpa": "RFC 3172: DNS infrastructure (including home.arpa, RFC 8375)",
    "internal": "ICANN, 2024: reserved for private networks",
    # Used on private networks and never delegated (RFC 6762 appendix G; ICANN's
    # name-collision decisions for home, corp and mail).
    "intranet": "RFC 6762 appendix G: private networks",
    "private": "RFC 6762 appendix G: private networks",
    "lan": "RFC 6762 appendix G: private networks",
    "home": "RFC 6762 appendix G and ICANN: private networks",
    "corp": "RFC 6762 appendix G and ICANN: private networks",
    "mail": "ICANN: never delegated, collides with private networks",
}

#: The first label of the TXT record that proves control of a custom domain.
TXT_RECORD_PREFIX = "_membership-verification"

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LABEL_CHARACTER = re.compile(r"[a-z0-9-]")
# The label separators the IDNA codec accepts (RFC 3490 §3.1).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")
# Things that read as IPv4 in one of inet_aton's forms: 127.1, 0x7f.0.0.1, 017.1.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_MAX_NAME = 253
_MAX_LABEL = 63


def normalize_subdomain(value: object) -> str:
    """Return ``value`` as a portal's sub-domain, or raise ``ValidationError("subdomain", ...)``.

    The sub-domain is one DNS label (RFC 1035, RFC 1123 §2.1): stripped and
    lowercased, 1 to 63 letters ``a-z``, digits and hyphens, neither starting
    nor ending with a hyphen. Labels with hyphens in the third and fourth
    places (``xn--...``) are kept for internationalized names and refused, and
    so is every name of :data:`RESERVED_SUBDOMAINS`. A label of digits only
    (``2026``) is a valid host name and allowed.

    >>> normalize_subdomain("www")
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: subdomain: 'www' is reserved; choose another name
    """
    field = "subdomain"
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    label = value.strip().lower()
    if not label:
        raise ValidationError(field, "must not be empty")
    if "." in label:
        raise ValidationError(field, f"{label!r} must be one name, without dots")
    if len(label) > _MAX_LABEL:
        raise ValidationError(field, f"must be at most {_MAX_LABEL} characters, not {len(label)}")
    bad = sorted({character for character in label if not _LABEL_CHARACTER.fullmatch(character)})
    if bad:
        shown = ", ".join(repr(character) for character in bad)
        raise ValidationError(
            field, f"may contain only letters a-z, digits and hyphens, not {shown}"
        )
    if label.startswith("-") or label.endswith("-"):
        raise ValidationError(field, f"{label!r} must not start or end with a hyphen")
    if label[2:4] == "--":
        raise ValidationError(
            field,
            f"{label!r} must not have hyphens in the third and fourth places "
            "(kept for internationalized names)",
        )
    if label in RESERVED_SUBDOMAINS:
        raise ValidationError(field, f"{label!r} is reserved; choose another name")
    return label


def normalize_custom_domain(value: object, *, platform_host: str) -> str:
    """Return ``value`` as a portal's custom domain, or raise a ``ValidationError`` about it.

    The result is a public host name in its ASCII form: stripped, lowercased,
    without its trailing dot, internationalized labels converted to punycode
    (``bücher.example.com`` becomes ``xn--bcher-kva.example.com``). It has at
    least two labels, each 1 to 63 letters, digits and hyphens not starting or
    ending with a hyphen, at most 253 characters in all, and ends in an
    alphabetic (or ``xn--``) top-level domain. Refused: IP addresses (also
    forms like ``127.1``), URLs, ports and wildcards, the special-use names of
    :data:`SPECIAL_USE_SUFFIXES` (``localhost``, ``*.local``, ``*.test``, ...),
    and ``platform_host`` itself, any name under it, and any name above it.

    ``platform_host`` is the platform's own host name (``members.example.net``);
    :class:`~membership_core.errors.ConfigurationError` if it is not one.

    >>> normalize_custom_domain("https://learn.example.com/", platform_host="example.net")
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: custom_domain: give the host name only, without https://...
    """
    field = "custom_domain"
    platform = _platform(platform_host)
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValidationError(field, "must not be empty")
    if _is_ip_address(text):
        raise ValidationError(field, f"{text!r} is an IP address; give a host name")
    if any(part in text for part in ("://", "/", "?", "#", "@", "\\")):
        raise ValidationError(field, "give the host name only, without https:// or a path")
    if ":" in text:
        raise ValidationError(field, "give the host name only, without a port")
    if "*" in text:
        raise ValidationError(field, "give one host name, not a wildcard")
    if any(character.isspace() for character in text):
        raise ValidationError(field, "must not contain spaces")
    name = _to_ascii(field, text)
    labels = name.split(".")
    if len(name) > _MAX_NAME:
        raise ValidationError(field, f"must be at most {_MAX_NAME} characters, not {len(name)}")
    for label in labels:
        _check_label(field, label)
    tld = labels[-1]
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(field, f"{name!r} is an IP address; give a host name")
    if tld in SPECIAL_USE_SUFFIXES:
        raise ValidationError(
            field,
            f"{name!r} is a special-use name ({SPECIAL_USE_SUFFIXES[tld]}), "
            "not a public web address",
        )
    if len(labels) < 2:
        raise ValidationError(field, f"{name!r} needs at least two labels, like example.com")
    if not (tld.isalpha() or tld.startswith("xn--")):
        raise ValidationError(field, f"{name!r} does not end in a valid top-level domain")
    if name == platform or name.endswith("." + platform):
        raise ValidationError(
            field, f"{name!r} is the platform's own domain; choose a sub-domain instead"
        )
    if platform.endswith("." + name):
        raise ValidationError(
            field, f"{name!r} contains the platform's own domain; choose a sub-domain instead"
        )
    return name


def _platform(platform_host: str) -> str:
    """The platform's host name, lowercased, without trailing dot, in ASCII."""
    if not isinstance(platform_host, str):
        raise ConfigurationError(
            f"platform_host must be a string, not {type(platform_host).__name__}"
        )
    host = platform_host.strip().lower()
    host = host.removesuffix(".")
    if not host or any(character in host for character in ":/@ "):
        raise ConfigurationError(f"platform_host must be a host name, not {platform_host!r}")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ConfigurationError(f"platform_host {platform_host!r} is not a host name") from error


def _is_ip_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (IPv6 also in brackets)."""
    candidate = text.removeprefix("[").removesuffix("]") if text.startswith("[") else text
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _to_ascii(field: str, text: str) -> str:
    """``text`` lowercased, without one trailing dot, each label in its ASCII form."""
    labels = _DOTS.split(text.lower())
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    converted = []
    for label in labels:
        if label.isascii():
            if label.startswith("xn--"):
                try:
                    label.encode("ascii").decode("idna")
                except UnicodeError:
                    raise ValidationError(
                        field, f"the label {label!r} is not a valid internationalized name"
                    ) from None
            converted.append(label)
            continue
        try:
            ascii_label = label.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValidationError(
                field, f"the label {label!r} is not a valid internationalized name"
            ) from None
        converted.append(ascii_label)
    return ".".join(converted)


def _check_label(field: str, label: str) -> None:
    """Raise unless ``label`` is a letters-digits-hyphen host name label (RFC 1123)."""
    if not label:
        raise ValidationError(field, "must not have an empty label (two dots in a row)")
    if len(label) > _MAX_LABEL:
        raise ValidationError(
            field, f"each label must be at most {_MAX_LABEL} characters, not {len(label)}"
        )
    if not _LABEL.fullmatch(label):
        if label.startswith("-") or label.endswith("-"):
            raise ValidationError(field, f"the label {label!r} must not start or end with a hyphen")
        raise ValidationError(
            field, f"the label {label!r} may contain only letters, digits and hyphens"
        )


@attrs.frozen
class DnsRecord:
    """One DNS record the admin creates at their DNS provider.

    ``type`` is ``"CNAME"`` or ``"TXT"``, ``name`` the full host name the
    record is at (no trailing dot), ``value`` what it must contain.
    """

    type: str
    name: str
    value: str


def verification_records(
    custom_domain: str, *, cname_target: str, token: str
) -> tuple[DnsRecord, DnsRecord]:
    """The two records proving a portal's custom domain: ``(cname, txt)``.

    The CNAME points ``custom_domain`` at ``cname_target`` (the platform's
    host that serves portals), so visitors reach the portal; the TXT record
    at ``_membership-verification.<custom_domain>`` holds
    ``membership-verification=<token>``, so only the domain's owner could have
    made it. ``custom_domain`` is expected normalized
    (:func:`normalize_custom_domain`); the target is lowercased, without its
    trailing dot. ``ValidationError`` for an empty target or a token that is
    not printable ASCII without spaces or quotes.
    """
    target = cname_target.strip().lower().removesuffix(".")
    if not target:
        raise ValidationError("cname_target", "must not be empty")
    if not token or not all("!" <= character <= "~" for character in token) or '"' in token:
        raise ValidationError("token", "must be printable ASCII without spaces or quotes")
    return (
        DnsRecord("CNAME", custom_domain, target),
        DnsRecord(
            "TXT", f"{TXT_RECORD_PREFIX}.{custom_domain}", f"membership-verification={token}"
        ),
    )


#: What a check of one record found: ``ok`` (present and right), ``missing``
#: (no such record), ``wrong`` (present with other values), ``unchecked`` (the
#: resolver cannot read that record type), ``error`` (the lookup failed).
RecordStatus = Literal["ok", "missing", "wrong", "unchecked", "error"]


@attrs.frozen
class RecordCheck:
    """The outcome of checking one :class:`DnsRecord`.

    ``found`` holds the values the resolver returned (empty unless the lookup
    answered); ``detail`` is a sentence for the admin saying what to do.
    """

    record: DnsRecord
    status: RecordStatus
    found: tuple[str, ...]
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the record is in place with the right value."""
        return self.status == "ok"


def _cname_form(value: str) -> str:
    return value.strip().lower().removesuffix(".")


def check_record(
    record: DnsRecord,
    found: tuple[str, ...] | None,
    *,
    error: str | None = None,
    unchecked: str | None = None,
) -> RecordCheck:
    """Compare what the resolver ``found`` at ``record.name`` with what ``record`` wants.

    CNAME values match case-insensitively, ignoring one trailing dot; TXT
    values match exactly (the resolver joins a record's strings), and one
    matching TXT record among several is enough. ``error`` (the lookup failed)
    gives ``"error"`` and ``unchecked`` (the resolver cannot read this record
    type; the text says how to fix that) gives ``"unchecked"``; ``found`` is
    then ignored. Giving both is a ``ValueError``.

    >>> name = "_membership-verification.example.com"
    >>> record = DnsRecord("TXT", name, "membership-verification=x")
    >>> check_record(record, ()).status
    'missing'
    >>> check_record(record, ("v=spf1 -all", "membership-verification=x")).ok
    True
    """
    where = f"{record.type} record at {record.name}"
    if error is not None and unchecked is not None:
        raise ValueError("give error or unchecked, not both")
    if unchecked is not None:
        return RecordCheck(record, "unchecked", (), f"the {where} was not checked: {unchecked}")
    if error is not None:
        return RecordCheck(
            record, "error", (), f"the {where} could not be looked up ({error}); try again later"
        )
    values = tuple(found or ())
    if not values:
        return RecordCheck(
            record, "missing", values, f"no {where} yet: create it with the value {record.value}"
        )
    if record.type == "CNAME":
        matches = any(_cname_form(value) == _cname_form(record.value) for value in values)
    else:
        matches = record.value in values
    if matches:
        return RecordCheck(record, "ok", values, f"the {where} is in place")
    shown = ", ".join(values)
    return RecordCheck(
        record, "wrong", values, f"the {where} holds {shown}; it must be {record.value}"
    )
