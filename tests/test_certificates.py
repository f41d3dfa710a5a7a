"""Certificates: issued once (retries, concurrent ticks), verified (valid, revoked, forged,
unknown), revoked and reissued with their history, and the portal's key kept in."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import attrs
import pytest

from membership_core import (
    CertificateIssued,
    CertificateRevoked,
    CertificateStatus,
    Conflict,
    FrozenClock,
    NotFound,
    Portal,
    SequentialIds,
    ValidationError,
    unstructure,
)
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.adapters.sql import SqlStorage
from membership_core.domain.certificates import SERIAL_ALPHABET, parse_reference
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course

WORKERS = 4
MEMBERS = 6


def _completed(portal: Portal, *, email: str = "ada@example.com") -> tuple[str, str]:
    """A member who completed a one-lesson course (issued by the default rule): ids."""
    course = build_course(portal, lessons=1, title="Knitting Socks")
    member = portal.checkout.purchase(
        course.offer.id, email=email, first_name="Ada", last_name="Lovelace"
    ).member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    return member, course.product.id


def _events(portal: TestPortal, kind: str) -> int:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return uow.events.count({"type": kind})


def _other(character: str) -> str:
    return SERIAL_ALPHABET[(SERIAL_ALPHABET.index(character) + 1) % len(SERIAL_ALPHABET)]


# -- issued exactly once ----------------------------------------------------------------


def test_issued_once_however_often_it_is_asked(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, product = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    for _ in range(3):
        portal.tick()
        assert portal.certificates.issue(member, product) == certificate
    assert portal.certificates.for_member(member) == [certificate]
    assert _events(portal, "CertificateIssued") == 1
    assert certificate.generation == 1
    assert certificate.replaces is None
    assert 0 <= certificate.status_index < 131_072
    assert certificate.status_list == 1


def test_not_completed_is_a_conflict_and_writes_nothing(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    member = portal.checkout.purchase(course.offer.id, email="bo@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    with pytest.raises(Conflict) as caught:
        portal.certificates.issue(member, course.product.id)
    assert caught.value.field == "product_id"
    assert portal.certificates.for_member(member) == []
    with pytest.raises(NotFound):
        portal.certificates.issue("mem_nobody", course.product.id)
    with pytest.raises(ValidationError, match="member_id"):
        portal.certificates.issue("prod_x", course.product.id)


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def workers(request: pytest.FixtureRequest) -> Iterator[list[Portal]]:
    """Portals on one database, as separate servers would open them, sharing a clock and ids."""
    url = str(request.getfixturevalue(request.param))
    clock = FrozenClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    ids = SequentialIds()  # shared, so workers never mint the same id
    storages = [SqlStorage(url) for _ in range(WORKERS)]
    portals = [
        Portal.open(storage, clock=clock, ids=ids, mailer=MemoryMailer(), load_entrypoints=False)
        for storage in storages
    ]
    try:
        yield portals
    finally:
        for portal, storage in zip(portals, storages, strict=True):
            portal.close()
            storage.close()


def _at_once(calls: list[Callable[[], object]]) -> list[BaseException]:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def work(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_ticks_and_issues_make_one_certificate_each(workers: list[Portal]) -> None:
    portals = workers
    seeder = portals[0]
    course = build_course(seeder, lessons=1)
    members = [
        seeder.checkout.purchase(course.offer.id, email=f"m{n}@example.com").member_id
        for n in range(MEMBERS)
    ]
    # The completions commit, but nobody dispatches them: the workers' ticks will.
    seeder._context.after_commit = lambda: None
    for member in members:
        seeder.progress.complete_lesson(member, course.lessons[0].id)
    calls: list[Callable[[], object]] = [portal.tick for portal in portals]
    calls += [lambda m=m: portals[1].certificates.issue(m, course.product.id) for m in members]
    assert _at_once(calls) == []
    for portal in portals:
        portal.tick()
    for member in members:
        (certificate,) = seeder.certificates.for_member(member)
        assert seeder.certificates.verify(certificate.serial).status is CertificateStatus.VALID
    with seeder.storage.unit_of_work(seeder.tenant, write=False) as uow:
        assert uow.events.count({"type": "CertificateIssued"}) == MEMBERS
        assert uow.portal_keys.count() == 1
        slots = {(c.status_list, c.status_index) for c in uow.certificates.find()}
    assert len(slots) == MEMBERS


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_portals_opened_at_once_share_one_key(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(database))
    opened: list[Portal] = []
    lock = threading.Lock()

    def open_one() -> None:
        portal = Portal.open(url, mailer=MemoryMailer(), load_entrypoints=False)
        with lock:
            opened.append(portal)

    try:
        assert _at_once([open_one] * WORKERS) == []
        member, _ = _completed(opened[0])
        (certificate,) = opened[0].certificates.for_member(member)
        codes = {portal.certificates.verification_code(certificate.id) for portal in opened}
        assert len(codes) == 1
    finally:
        for portal in opened:
            portal.close()


# -- verification -----------------------------------------------------------------------


def test_a_valid_certificate_verifies_by_serial_and_by_code_with_its_facts(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(platform_url="https://learn.acme.test")
    portal.settings.update_site(title="Acme Academy")
    member, _product = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    code = portal.certificates.verification_code(certificate.id)
    assert code.startswith(certificate.serial + "-")
    assert len(code.split("-")) == 8
    assert portal.certificates.verification_url(certificate.id) == (
        f"https://learn.acme.test/certificates/verify?code={code}"
    )
    for given, checked in (
        (certificate.serial, False),
        (f"  {certificate.serial.lower()} ", False),
        (code, True),
        (code.replace("-", "").lower(), True),
        (f" {code.replace('-', ' ')} ", True),
    ):
        check = portal.certificates.verify(given)
        assert check.status is CertificateStatus.VALID, given
        assert check.code_checked is checked
        assert check.certificate == certificate
        facts = check.facts
        assert facts is not None
        assert (facts.recipient_name, facts.course_title, facts.issuer_name) == (
            "Ada Lovelace",
            "Knitting Socks",
            "Acme Academy",
        )
        assert facts.completed_at == certificate.completed_at
        assert facts.revoked_at is None
        assert facts.replaced_by is None
        # the public part names no internal ids
        assert "mem_" not in json.dumps(unstructure(facts))


def test_forged_and_unknown_codes(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, _product = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    code = portal.certificates.verification_code(certificate.id)
    # Any changed character of the signature part: forged, and nothing is shown.
    signature_start = len(certificate.serial) + 1
    for position in range(signature_start, len(code)):
        if code[position] == "-":
            continue
        altered = code[:position] + _other(code[position]) + code[position + 1 :]
        check = portal.certificates.verify(altered)
        assert check.status is CertificateStatus.FORGED, altered
        assert check.certificate is None
        assert check.facts is None
        assert check.code_checked
    # A code made up for a serial that exists: forged too.
    assert portal.certificates.verify(certificate.serial + "-AAAA-BBBB-CCCC-DDDD").status is (
        CertificateStatus.FORGED
    )
    # Another serial (a changed character of the serial part): unknown.
    swapped = code[:3] + _other(code[3]) + code[4:]
    assert portal.certificates.verify(swapped).status is CertificateStatus.UNKNOWN
    for text in ("", "   ", "MC-AAAA-BBBB-CCCC", "MC-0000-1111-OOOO", "hello", "MC-" + "A" * 500):
        check = portal.certificates.verify(text)
        assert check.status is CertificateStatus.UNKNOWN, text
        assert check.certificate is None
        assert check.facts is None
    with pytest.raises(ValidationError, match="serial_or_code"):
        portal.certificates.verify(cast(Any, None))


def test_a_code_from_another_portal_or_for_changed_facts_does_not_check(
    open_portal: PortalFactory,
) -> None:
    a, b = open_portal(), open_portal(tenant="other")
    member, _ = _completed(a)
    (certificate,) = a.certificates.for_member(member)
    code = a.certificates.verification_code(certificate.id)
    assert b.certificates.verify(code).status is CertificateStatus.UNKNOWN
    # A record edited behind the library's back (a new name): its old code is now forged.
    with a.storage.unit_of_work(a.tenant) as uow:
        stored = uow.certificates.get(certificate.id)
        assert stored is not None
        uow.certificates.update(attrs.evolve(stored, recipient_name="Mallory"))
        uow.commit()
    assert a.certificates.verify(code).status is CertificateStatus.FORGED
    assert a.certificates.verify(certificate.serial).status is CertificateStatus.VALID


def test_parse_reference() -> None:
    assert parse_reference("mc 2345 6789 abcd") == ("MC-2345-6789-ABCD", None)
    assert parse_reference("MC-2345-6789-ABCD-2345") is None  # neither a serial nor a code
    assert parse_reference("XX-2345-6789-ABCD") is None


# -- revoking and reissuing -------------------------------------------------------------


def test_revoke_shows_date_and_reason_and_writes_once(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, product = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    code = portal.certificates.verification_code(certificate.id)
    portal.clock.advance(days=3)
    revoked = portal.certificates.revoke(certificate.id, reason=" Plagiarised quiz ")
    assert revoked.revoked_at == portal.clock.now()
    assert revoked.revocation_reason == "Plagiarised quiz"
    for given in (certificate.serial, code):  # the code still checks: the facts are the same
        check = portal.certificates.verify(given)
        assert check.status is CertificateStatus.REVOKED
        assert check.facts is not None
        assert check.facts.revoked_at == portal.clock.now()
        assert check.facts.revocation_reason == "Plagiarised quiz"
    assert _events(portal, "CertificateRevoked") == 1
    with pytest.raises(Conflict, match="already revoked") as caught:
        portal.certificates.revoke(certificate.id, reason="again")
    assert caught.value.field == "certificate_id"
    for bad in ({"reason": ""}, {"reason": "x" * 501}, {"reason": None}):
        with pytest.raises(ValidationError, match="reason"):
            portal.certificates.revoke(certificate.id, **cast(Any, bad))
    with pytest.raises(NotFound):
        portal.certificates.revoke("cert_nope", reason="x")
    assert _events(portal, "CertificateRevoked") == 1
    # Issuing again returns the revoked one: revocation is not undone by a retry.
    assert portal.certificates.issue(member, product) == revoked


def test_reissue_keeps_the_history(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, product = _completed(portal)
    (first,) = portal.certificates.for_member(member)
    first_code = portal.certificates.verification_code(first.id)
    portal.members.update(member, first_name="Augusta Ada", last_name="King")
    portal.catalog.update_product(product, title="Knitting Socks, 2nd edition")
    portal.clock.advance(days=1)
    second = portal.certificates.reissue(first.id, reason="name changed")
    assert [_events(portal, "CertificateIssued"), _events(portal, "CertificateRevoked")] == [2, 1]
    assert second.serial != first.serial
    assert (second.generation, second.replaces) == (2, first.id)
    assert second.recipient_name == "Augusta Ada King"
    assert second.course_title == "Knitting Socks, 2nd edition"
    assert second.completed_at == first.completed_at
    old = portal.certificates.get(first.id)
    assert old.replaced_by == second.id
    assert old.revocation_reason == "reissued: name changed"
    assert old.recipient_name == "Ada Lovelace"  # the history as it was
    check = portal.certificates.verify(first_code)
    assert check.status is CertificateStatus.REVOKED
    assert check.facts is not None
    assert check.facts.replaced_by == second.serial
    assert portal.certificates.verify(second.serial).status is CertificateStatus.VALID
    assert portal.certificates.for_member(member) == [old, second]
    assert portal.certificates.issue(member, product) == second
    with pytest.raises(Conflict, match="already reissued") as caught:
        portal.certificates.reissue(first.id, reason="again")
    assert caught.value.field == "certificate_id"
    # A revoked certificate can be reissued; it keeps its own revocation.
    portal.certificates.revoke(second.id, reason="wrong course")
    third = portal.certificates.reissue(second.id, reason="fixed")
    assert portal.certificates.get(second.id).revocation_reason == "wrong course"
    assert third.generation == 3
    assert _events(portal, "CertificateRevoked") == 2


def test_reissue_of_a_deleted_member_is_refused(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, _ = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    portal.members.delete(member)
    with pytest.raises(Conflict, match="deleted"):
        portal.certificates.reissue(certificate.id, reason="x")
    assert len(portal.certificates.for_member(member)) == 1


def test_concurrent_reissues_make_one_replacement(workers: list[Portal]) -> None:
    portals = workers
    member, _ = _completed(portals[0])
    (certificate,) = portals[0].certificates.for_member(member)
    errors = _at_once(
        [lambda p=p: p.certificates.reissue(certificate.id, reason="typo") for p in portals]
    )
    assert len(errors) == WORKERS - 1
    assert all(isinstance(error, Conflict) for error in errors), errors
    assert len(portals[0].certificates.for_member(member)) == 2


def test_events_of_revoke_and_reissue(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, _ = _completed(portal)
    (first,) = portal.certificates.for_member(member)
    second = portal.certificates.reissue(first.id, reason="typo")
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        records = {r.type: r.payload for r in uow.events.find(order_by=["occurred_at"])}
    assert records["CertificateRevoked"]["replaced_by"] == second.id
    assert records["CertificateIssued"]["replaces"] == first.id
    assert CertificateIssued.__name__ in records
    assert CertificateRevoked.__name__ in records


# -- the portal's key ---------------------------------------------------------------------


def test_the_key_never_leaves_storage(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member, _ = _completed(portal)
    (certificate,) = portal.certificates.for_member(member)
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        key = uow.portal_keys.get("certificates")
    assert key is not None
    assert key.secret not in repr(key)
    outputs = [
        repr(portal.certificates.verify(certificate.serial)),
        json.dumps(unstructure(portal.certificates.verify(certificate.serial))),
        json.dumps(unstructure(portal.settings.site())),
        json.dumps(unstructure(portal.settings.email())),
        portal.certificates.render_html(certificate.id),
        portal.certificates.verification_url(certificate.id),
    ]
    assert not [text for text in outputs if key.secret in text]
    # and it stays the same key across openings and time
    portal.clock.advance(days=400)
    assert portal.certificates.verification_code(certificate.id) == (
        portal.certificates.verification_code(certificate.id)
    )
    assert timedelta(0) < portal.clock.now() - key.created_at
