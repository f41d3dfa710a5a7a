"""Domain settings: a sub-domain unique across portals, a custom domain proven through DNS,
and the portal's URLs following them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from membership_core import Conflict, ValidationError
from membership_core.ports.storage import Storage
from membership_core.testing import FakeResolver, TestPortal

from .conftest import PortalFactory
from .helpers import build_course, snapshot

PLATFORM = "https://members.example.net"


Portals = Callable[..., TestPortal]


@pytest.fixture
def portals(open_portal: PortalFactory, storage: Storage) -> Portals:
    """Open portals (by tenant) in one shared database, on the platform ``PLATFORM``."""

    def open_one(tenant: str = "default") -> TestPortal:
        return open_portal(storage, tenant=tenant, platform_url=PLATFORM)

    return open_one


def _publish(portal: TestPortal) -> None:
    verification = portal.settings.domain_verification()
    assert verification is not None
    for record in verification.records:
        portal.resolver.set(record.name, record.type, record.value)


def test_the_url_follows_the_subdomain(portals: Portals) -> None:
    portal = portals()
    assert portal.settings.base_url() == PLATFORM
    domain = portal.settings.update_domain(subdomain="  Piano-School ")
    assert domain.subdomain == "piano-school"
    assert portal.settings.base_url() == "https://piano-school.members.example.net"
    assert portal.settings.update_domain(subdomain=None).subdomain is None
    assert portal.settings.base_url() == PLATFORM


@pytest.mark.parametrize(
    ("subdomain", "phrase"),
    [("login", "reserved"), ("piano_school", "letters"), ("a.b", "dots"), ("-x", "hyphen")],
)
def test_bad_subdomains_are_refused(portals: Portals, subdomain: str, phrase: str) -> None:
    portal = portals()
    before = snapshot(portal)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_domain(subdomain=subdomain)
    assert caught.value.field == "subdomain"
    assert phrase in caught.value.problem
    assert snapshot(portal) == before


def test_a_subdomain_names_one_portal_of_the_database(portals: Portals) -> None:
    acme = portals("acme")
    globex = portals("globex")
    acme.settings.update_domain(subdomain="school")
    before = snapshot(globex, "globex")
    with pytest.raises(Conflict) as caught:
        globex.settings.update_domain(subdomain="School")
    assert caught.value.field == "subdomain"
    assert "taken by another portal" in str(caught.value)
    assert snapshot(globex, "globex") == before
    # Let go when acme moves: globex may have it now.
    acme.settings.update_domain(subdomain="acme")
    assert globex.settings.update_domain(subdomain="school").subdomain == "school"
    with pytest.raises(Conflict):
        acme.settings.update_domain(subdomain="school")
    assert acme.settings.domain().subdomain == "acme"


def test_a_custom_domain_starts_unverified_with_its_records(portals: Portals) -> None:
    portal = portals()
    portal.settings.update_domain(subdomain="acme")
    assert portal.settings.domain_verification() is None
    domain = portal.settings.update_domain(custom_domain="Learn.Acme.com.")
    assert domain.custom_domain == "learn.acme.com"
    assert not domain.verified
    assert portal.settings.base_url() == "https://acme.members.example.net"
    verification = portal.settings.domain_verification()
    assert verification is not None
    assert not verification.verified
    cname, txt = verification.records
    assert (cname.type, cname.name, cname.value) == (
        "CNAME",
        "learn.acme.com",
        "acme.members.example.net",
    )
    assert (txt.type, txt.name) == ("TXT", "_membership-verification.learn.acme.com")
    assert txt.value == f"membership-verification={domain.verification_token}"
    assert domain.verification_token is not None
    assert len(domain.verification_token) == 32


@pytest.mark.parametrize(
    ("custom_domain", "phrase"),
    [
        ("https://learn.acme.com/", "host name only"),
        ("203.0.113.9", "IP address"),
        ("school.local", "special-use"),
        ("acme.members.example.net", "platform's own domain"),
        ("members.example.net", "platform's own domain"),
    ],
)
def test_bad_custom_domains_are_refused(portals: Portals, custom_domain: str, phrase: str) -> None:
    portal = portals()
    before = snapshot(portal)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_domain(custom_domain=custom_domain)
    assert caught.value.field == "custom_domain"
    assert phrase in caught.value.problem
    assert snapshot(portal) == before


def test_verification_passes_once_both_records_are_right(portals: Portals) -> None:
    portal = portals()
    portal.settings.update_domain(subdomain="acme", custom_domain="learn.acme.com")
    first = portal.settings.verify_domain()
    assert [check.status for check in first.checks] == ["missing", "missing"]
    assert not first.verified
    assert portal.settings.base_url() == "https://acme.members.example.net"

    verification = portal.settings.domain_verification()
    assert verification is not None
    cname, txt = verification.records
    portal.resolver.set(cname.name, "CNAME", "elsewhere.example.org")
    portal.resolver.set(txt.name, "TXT", "v=spf1 -all", txt.value)
    second = portal.settings.verify_domain()
    assert [check.status for check in second.checks] == ["wrong", "ok"]
    assert second.checks[0].found == ("elsewhere.example.org",)
    assert not portal.settings.domain().verified

    portal.resolver.set(cname.name, "CNAME", "ACME.members.example.net.")
    portal.clock.advance(minutes=5)
    third = portal.settings.verify_domain(changed_by="ada")
    assert third.verified
    assert [check.status for check in third.checks] == ["ok", "ok"]
    assert third.verified_at == portal.clock.now()
    assert portal.settings.base_url() == "https://learn.acme.com"
    change = portal.settings.history(area="domain", limit=1)[0]
    assert change.fields == ("verified_at",)
    assert change.changed_by == "ada"


def test_a_failing_lookup_or_an_unreadable_record_type_never_verifies(
    portals: Portals,
) -> None:
    portal = portals()
    portal.settings.update_domain(custom_domain="learn.acme.com")
    _publish(portal)
    portal.resolver.fail("learn.acme.com", "CNAME")
    result = portal.settings.verify_domain()
    assert [check.status for check in result.checks] == ["error", "ok"]
    portal.resolver.clear("learn.acme.com")
    _publish(portal)
    portal.resolver.unsupported("TXT", "this resolver reads no TXT records")
    result = portal.settings.verify_domain()
    assert [check.status for check in result.checks] == ["ok", "unchecked"]
    assert "no TXT records" in result.checks[1].detail
    assert not portal.settings.domain().verified


def test_every_portal_url_follows_the_verified_domain(portals: Portals) -> None:
    portal = portals()
    portal.settings.update_email("welcome", enabled=True)
    portal.settings.update_domain(custom_domain="learn.acme.com")
    _publish(portal)
    assert portal.settings.verify_domain().verified
    course = build_course(portal, lessons=1)
    assert portal.offers.link(course.offer.id) == f"https://learn.acme.com/offers/{course.offer.id}"
    purchase = portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.tick()
    welcome = portal.mailer.last
    assert "https://learn.acme.com/" in welcome.text
    assert "members.example.net" not in welcome.text
    portal.progress.complete_lesson(purchase.member_id, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(purchase.member_id)
    url = portal.certificates.verification_url(certificate.id)
    assert url.startswith("https://learn.acme.com/certificates/verify?code=")


def test_a_new_custom_domain_starts_over(portals: Portals) -> None:
    portal = portals()
    assert portal.use_domain("learn.acme.com") == "https://learn.acme.com"
    old_token = portal.settings.domain().verification_token
    domain = portal.settings.update_domain(custom_domain="courses.acme.com")
    assert not domain.verified
    assert domain.verification_token != old_token
    assert portal.settings.base_url() == PLATFORM
    assert portal.settings.update_domain(custom_domain=None).verification_token is None


def test_a_domain_verified_by_one_portal_cannot_be_taken_by_another(
    portals: Portals,
) -> None:
    acme = portals("acme")
    globex = portals("globex")
    initech = portals("initech")
    # Typing a domain claims nothing (nobody can block a domain by typing it first):
    # both may try; the proof decides.
    acme.settings.update_domain(custom_domain="learn.acme.com")
    globex.settings.update_domain(custom_domain="learn.acme.com")
    _publish(acme)
    assert acme.settings.verify_domain().verified
    # Globex's pending entry cannot be verified, even with records that fit it.
    _publish(globex)
    with pytest.raises(Conflict):
        globex.settings.verify_domain()
    assert not globex.settings.domain().verified
    # Once verified by acme, nobody else may even enter it.
    before = snapshot(initech, "initech")
    with pytest.raises(Conflict) as caught:
        initech.settings.update_domain(custom_domain="LEARN.acme.com", subdomain="initech")
    assert caught.value.field == "custom_domain"
    assert snapshot(initech, "initech") == before
    # Once acme lets go, the domain is free again.
    acme.settings.update_domain(custom_domain=None)
    assert globex.settings.verify_domain().verified


def test_verify_without_a_custom_domain_is_refused(portals: Portals) -> None:
    portal = portals()
    with pytest.raises(ValidationError) as caught:
        portal.settings.verify_domain()
    assert caught.value.field == "custom_domain"


def test_the_default_resolver_is_the_standard_librarys(portals: Portals) -> None:
    from membership_core import Portal
    from membership_core.adapters.dns_stdlib import StdlibResolver

    with Portal.open("memory://", load_entrypoints=False) as portal:
        assert isinstance(portal.resolver, StdlibResolver)
    assert isinstance(portals().resolver, FakeResolver)


@pytest.mark.parametrize(
    ("platform_url", "phrase"),
    [
        ("members.example.net", "absolute"),
        ("ftp://x.example", "absolute"),
        ("https://x.y/?a=1", "query"),
    ],
)
def test_a_bad_platform_url_is_refused(platform_url: str, phrase: str) -> None:
    from membership_core import Portal

    with pytest.raises(ValidationError) as caught:
        Portal.open("memory://", platform_url=platform_url)
    assert caught.value.field == "platform_url"
    assert phrase in caught.value.problem


def test_a_request_is_routed_to_its_portal_by_host_name(portals: Portals) -> None:
    from membership_core import tenant_for_host

    acme, globex = portals("acme"), portals("globex")
    acme.settings.update_domain(subdomain="acme")
    globex.settings.update_domain(subdomain="globex", custom_domain="learn.globex.com")

    def route(host: str) -> str | None:
        return tenant_for_host(acme.storage, host, platform_url=PLATFORM)

    assert route("acme.members.example.net") == "acme"
    assert route("ACME.Members.Example.NET.:8443") == "acme"
    assert route("globex.members.example.net") == "globex"
    assert route("learn.globex.com") is None  # not verified yet
    _publish(globex)
    assert globex.settings.verify_domain().verified
    assert route("learn.globex.com") == "globex"
    assert route("members.example.net") is None  # the platform itself
    assert route("nobody.members.example.net") is None
    assert route("a.b.members.example.net") is None
    assert route("") is None
    globex.settings.update_domain(custom_domain=None, subdomain="globex-2")
    assert route("learn.globex.com") is None
    assert route("globex.members.example.net") is None
    assert route("globex-2.members.example.net") == "globex"
