"""The domain rules: sub-domains, custom domains, the verification records and their check."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core.domain.domains import (
    RESERVED_SUBDOMAINS,
    SPECIAL_USE_SUFFIXES,
    TXT_RECORD_PREFIX,
    DnsRecord,
    check_record,
    normalize_custom_domain,
    normalize_subdomain,
    verification_records,
)
from membership_core.errors import ConfigurationError, ValidationError

PLATFORM = "members.example.net"
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def custom(value: object) -> str:
    return normalize_custom_domain(value, platform_host=PLATFORM)


def accepted(field: str, normalize: Callable[[str], str], value: str) -> str | None:
    """``normalize(value)``, or ``None`` if it raised a ValidationError about ``field``."""
    try:
        return normalize(value)
    except ValidationError as error:
        if error.field != field:
            raise
        return None


# -- sub-domains ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("piano", "piano"),
        ("  Piano-School\n", "piano-school"),
        ("a", "a"),
        ("2026", "2026"),
        ("a1-b2", "a1-b2"),
        ("a--b", "a--b"),
        ("x" * 63, "x" * 63),
        ("wwwx", "wwwx"),
    ],
)
def test_valid_subdomains(value: str, expected: str) -> None:
    assert normalize_subdomain(value) == expected


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        (None, "must be a string, not NoneType"),
        (42, "must be a string, not int"),
        (b"piano", "must be a string, not bytes"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 64, "at most 63 characters, not 64"),
        ("piano.school", "without dots"),
        ("piano_school", "not '_'"),
        ("piano school", "not ' '"),
        ("bücher", "not 'ü'"),
        ("-piano", "must not start or end with a hyphen"),
        ("piano-", "must not start or end with a hyphen"),
        ("xn--bcher-kva", "third and fourth places"),
        ("ab--cd", "third and fourth places"),
        ("www", "'www' is reserved"),
        ("WWW", "'www' is reserved"),
        (" Admin ", "'admin' is reserved"),
    ],
)
def test_invalid_subdomains(value: object, phrase: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_subdomain(value)
    assert caught.value.field == "subdomain"
    assert phrase in caught.value.problem


@pytest.mark.parametrize(
    "name",
    [
        "www",
        "api",
        "admin",
        "app",
        "mail",
        "smtp",
        "imap",
        "ns1",
        "mx",
        "cdn",
        "static",
        "assets",
        "media",
        "status",
        "help",
        "support",
        "docs",
        "blog",
        "login",
        "auth",
        "sso",
        "account",
        "accounts",
        "billing",
        "dashboard",
        "portal",
        "domains",
        "autodiscover",
        "wpad",
        "mta-sts",
    ],
)
def test_reserved_subdomains_are_refused(name: str) -> None:
    assert name in RESERVED_SUBDOMAINS
    with pytest.raises(ValidationError, match="is reserved"):
        normalize_subdomain(name)


def test_every_reserved_name_is_a_valid_label() -> None:
    # A reserved name that is not a label could never be chosen anyway: a typo in the list.
    assert all(LABEL.match(name) for name in RESERVED_SUBDOMAINS)


@given(st.text(alphabet="abcxyzAZ019-_. ü\t", max_size=70))
def test_accepted_subdomains_are_labels_and_stable(value: str) -> None:
    label = accepted("subdomain", normalize_subdomain, value)
    if label is None:
        return
    assert LABEL.match(label)
    assert label[2:4] != "--"
    assert label not in RESERVED_SUBDOMAINS
    assert normalize_subdomain(label) == label


@given(st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"))
def test_labels_are_accepted_unless_reserved_or_hyphens_at_3_4(label: str) -> None:
    if label in RESERVED_SUBDOMAINS or label[2:4] == "--":
        with pytest.raises(ValidationError):
            normalize_subdomain(label)
    else:
        assert normalize_subdomain(label) == label


# -- custom domains ---------------------------------------------------------------


def name_of_length(total: int) -> str:
    """A valid host name of exactly ``total`` characters, ending in .com."""
    labels = []
    remaining = total - len(".com")
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:  # would leave a dot and no room for a label
            size -= 2
        labels.append("a" * size)
        remaining -= size + 1
    name = ".".join(labels) + ".com"
    assert len(name) == total, (len(name), total)
    return name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("learn.example.com", "learn.example.com"),
        ("  Learn.Example.COM  ", "learn.example.com"),
        ("learn.example.com.", "learn.example.com"),
        ("example.com", "example.com"),
        ("a.b.c.d.example.co.uk", "a.b.c.d.example.co.uk"),
        ("123.example.com", "123.example.com"),
        ("my-school.example.com", "my-school.example.com"),
        ("bücher.example.com", "xn--bcher-kva.example.com"),
        ("BÜCHER.example.com", "xn--bcher-kva.example.com"),
        ("xn--bcher-kva.example.com", "xn--bcher-kva.example.com"),
        ("bücher\u3002example\uff0ecom", "xn--bcher-kva.example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("straße.example.com", "strasse.example.com"),  # IDNA 2003 maps ß to ss
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (name_of_length(253), name_of_length(253)),
        ("members.example.org", "members.example.org"),  # the platform's name, elsewhere
        ("example.net.example.com", "example.net.example.com"),
    ],
)
def test_valid_custom_domains(value: str, expected: str) -> None:
    assert custom(value) == expected


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        (None, "must be a string, not NoneType"),
        (["learn.example.com"], "must be a string, not list"),
        ("", "must not be empty"),
        (" ", "must not be empty"),
        # URLs, ports, wildcards
        ("https://learn.example.com", "give the host name only, without https:// or a path"),
        ("http://learn.example.com/", "give the host name only, without https:// or a path"),
        ("learn.example.com/courses", "give the host name only, without https:// or a path"),
        ("learn.example.com?x=1", "give the host name only, without https:// or a path"),
        ("ada@learn.example.com", "give the host name only, without https:// or a path"),
        ("learn.example.com:8443", "give the host name only, without a port"),
        ("*.example.com", "not a wildcard"),
        ("learn example.com", "must not contain spaces"),
        # IP addresses, in every form
        ("192.0.2.1", "is an IP address"),
        ("127.0.0.1", "is an IP address"),
        ("127.1", "is an IP address"),
        ("0x7f.1", "is an IP address"),
        ("0x7f.0x0.0x0.0x1", "is an IP address"),
        ("2130706433", "is an IP address"),
        ("017.0.0.1", "is an IP address"),
        ("::1", "is an IP address"),
        ("2001:db8::1", "is an IP address"),
        ("[2001:db8::1]", "is an IP address"),
        ("::ffff:192.0.2.1", "is an IP address"),
        ("fe80::1%eth0", "is an IP address"),
        # labels
        ("learn..example.com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("-learn.example.com", "must not start or end with a hyphen"),
        ("learn-.example.com", "must not start or end with a hyphen"),
        ("learn_school.example.com", "may contain only letters, digits and hyphens"),
        ("a" * 64 + ".com", "at most 63 characters, not 64"),
        (name_of_length(254), "at most 253 characters, not 254"),
        ("xn--zz.example.com", "not a valid internationalized name"),
        ("xn--abc-.example.com", "not a valid internationalized name"),
        ("\u200b.example.com", "not a valid internationalized name"),
        # the top-level domain
        ("example", "at least two labels"),
        ("com", "at least two labels"),
        ("example.c0m", "valid top-level domain"),
        ("example.123a", "valid top-level domain"),
        # special-use names
        ("localhost", "special-use name (RFC 6761"),
        ("LOCALHOST.", "special-use name (RFC 6761"),
        ("app.localhost", "special-use name (RFC 6761"),
        ("printer.local", "special-use name (RFC 6762"),
        ("school.test", "special-use name (RFC 6761"),
        ("nothing.invalid", "special-use name (RFC 6761"),
        ("hidden.onion", "special-use name (RFC 7686"),
        ("router.home.arpa", "special-use name (RFC 3172"),
        ("1.2.0.192.in-addr.arpa", "special-use name (RFC 3172"),
        ("wiki.internal", "special-use name (ICANN"),
        ("name.alt", "special-use name (RFC 9476"),
        ("nas.lan", "special-use name"),
        ("intranet.corp", "special-use name"),
        # the platform's own domain
        ("members.example.net", "is the platform's own domain; choose a sub-domain instead"),
        ("Members.Example.Net.", "is the platform's own domain; choose a sub-domain instead"),
        ("acme.members.example.net", "is the platform's own domain; choose a sub-domain"),
        ("a.b.members.example.net", "is the platform's own domain; choose a sub-domain"),
        ("example.net", "contains the platform's own domain; choose a sub-domain"),
    ],
)
def test_invalid_custom_domains(value: object, phrase: str) -> None:
    with pytest.raises(ValidationError) as caught:
        custom(value)
    assert caught.value.field == "custom_domain"
    assert phrase in caught.value.problem


def test_every_special_use_suffix_is_refused() -> None:
    for suffix in SPECIAL_USE_SUFFIXES:
        with pytest.raises(ValidationError, match="special-use name"):
            custom(f"school.{suffix}")


def test_an_internationalized_platform_host_is_compared_in_ascii() -> None:
    with pytest.raises(ValidationError, match="platform's own domain"):
        normalize_custom_domain("acme.xn--bcher-kva.example", platform_host="Bücher.example.")
    assert normalize_custom_domain("acme.example.com", platform_host="localhost") == (
        "acme.example.com"
    )


@pytest.mark.parametrize("platform_host", ["", "  ", "https://example.net", "example.net:8000"])
def test_a_platform_host_that_is_not_a_host_name_is_a_configuration_error(
    platform_host: str,
) -> None:
    with pytest.raises(ConfigurationError, match="platform_host"):
        normalize_custom_domain("learn.example.com", platform_host=platform_host)


_LABELS = st.one_of(
    st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z"),
    st.text(alphabet="aZü9-_ßé\u3002", min_size=0, max_size=12),
)
_TLDS = st.sampled_from(["com", "org", "de", "xn--p1ai", "рф", "local", "1", "c0m", ""])


@given(st.lists(_LABELS, min_size=1, max_size=5), _TLDS, st.sampled_from(["", ".", " "]))
def test_accepted_custom_domains_are_hostnames_and_stable(
    labels: list[str], tld: str, end: str
) -> None:
    value = ".".join([*labels, tld]) + end
    name = accepted("custom_domain", custom, value)
    if name is None:
        return
    assert name.isascii()
    assert len(name) <= 253
    parts = name.split(".")
    assert len(parts) >= 2
    assert all(LABEL.match(part) for part in parts)
    assert parts[-1].isalpha() or parts[-1].startswith("xn--")
    assert custom(name) == name


@given(st.text(max_size=40))
def test_custom_domains_raise_only_validation_errors(value: str) -> None:
    name = accepted("custom_domain", custom, value)
    if name is not None:
        assert custom(name) == name


# -- the verification records ------------------------------------------------------


def test_verification_records() -> None:
    cname, txt = verification_records(
        "learn.example.com", cname_target="Portals.Example.NET.", token="abc123"
    )
    assert cname == DnsRecord("CNAME", "learn.example.com", "portals.example.net")
    assert txt == DnsRecord(
        "TXT", f"{TXT_RECORD_PREFIX}.learn.example.com", "membership-verification=abc123"
    )
    assert txt.name == "_membership-verification.learn.example.com"


@pytest.mark.parametrize(
    ("target", "token", "field"),
    [
        ("", "abc", "cname_target"),
        (".", "abc", "cname_target"),
        ("portals.example.net", "", "token"),
        ("portals.example.net", "a b", "token"),
        ("portals.example.net", 'a"b', "token"),
        ("portals.example.net", "tökén", "token"),
    ],
)
def test_verification_records_refuse_bad_targets_and_tokens(
    target: str, token: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        verification_records("learn.example.com", cname_target=target, token=token)
    assert caught.value.field == field


# -- checking a record ---------------------------------------------------------------

CNAME = DnsRecord("CNAME", "learn.example.com", "portals.example.net")
TXT = DnsRecord("TXT", "_membership-verification.learn.example.com", "membership-verification=t")


@pytest.mark.parametrize(
    ("record", "found", "status"),
    [
        (CNAME, ("portals.example.net",), "ok"),
        (CNAME, ("PORTALS.example.NET.",), "ok"),
        (CNAME, ("portals.example.net..",), "wrong"),
        (CNAME, ("other.example.net",), "wrong"),
        (CNAME, ("portals.example.ne",), "wrong"),
        (CNAME, (), "missing"),
        (CNAME, None, "missing"),
        (TXT, ("membership-verification=t",), "ok"),
        (TXT, ("v=spf1 -all", "membership-verification=t"), "ok"),
        (TXT, ("membership-verification=T",), "wrong"),
        (TXT, ("membership-verification=t ",), "wrong"),
        (TXT, ("membership-verification=old",), "wrong"),
        (TXT, (), "missing"),
    ],
)
def test_check_record_statuses(
    record: DnsRecord, found: tuple[str, ...] | None, status: str
) -> None:
    check = check_record(record, found)
    assert check.status == status
    assert check.ok is (status == "ok")
    assert check.record == record
    assert check.found == (found or ())


def test_check_record_details_tell_the_admin_what_to_do() -> None:
    missing = check_record(TXT, ())
    assert "create it with the value membership-verification=t" in missing.detail
    wrong = check_record(CNAME, ("other.example.net",))
    assert "holds other.example.net; it must be portals.example.net" in wrong.detail
    assert "in place" in check_record(CNAME, ("portals.example.net",)).detail


def test_check_record_error_and_unchecked() -> None:
    error = check_record(CNAME, ("portals.example.net",), error="timed out")
    assert (error.status, error.ok, error.found) == ("error", False, ())
    assert "timed out" in error.detail
    assert "try again later" in error.detail
    unchecked = check_record(TXT, None, unchecked="install membership_core[dns]")
    assert (unchecked.status, unchecked.ok) == ("unchecked", False)
    assert "install membership_core[dns]" in unchecked.detail
    with pytest.raises(ValueError, match="not both"):
        check_record(TXT, None, error="x", unchecked="y")
