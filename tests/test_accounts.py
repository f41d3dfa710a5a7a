"""Member credentials: passwords, throttling, reset links, magic links, sessions, tenants."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from membership_core import InvalidToken, Member, ValidationError
from membership_core.adapters.passwords_argon2 import Argon2Hasher
from membership_core.domain.credentials import AccountPolicy, TokenPurpose
from membership_core.errors import TooManyAttempts
from membership_core.services.accounts import InvalidCredentials
from membership_core.testing import TestPortal

from .conftest import PortalFactory

GOOD = "correct horse battery"
OTHER = "staple orbit lantern"


class CountingHasher:
    """A fast stand-in for argon2 that counts its verifications (timing is work done)."""

    def __init__(self, rounds: str = "1") -> None:
        self.rounds = rounds
        self.verified = 0

    def hash(self, password: str) -> str:
        return f"fake${self.rounds}${hashlib.sha256(password.encode()).hexdigest()}"

    def verify(self, stored: str, password: str) -> bool:
        self.verified += 1
        return stored.split("$")[-1] == hashlib.sha256(password.encode()).hexdigest()

    def needs_rehash(self, stored: str) -> bool:
        return stored.split("$")[1] != self.rounds


def _member_with_password(portal: TestPortal, email: str = "ada@example.com") -> Member:
    member = portal.members.invite(email, first_name="Ada")
    return portal.accounts.set_password(member.id, GOOD, GOOD)


def _link_from_mail(portal: TestPortal, to: str) -> str:
    portal.tick()  # account emails go out with the tick, never during the request
    text = portal.mailer.messages_to(to)[-1].text
    found = re.search(r"https://\S+\?token=(\S+)", text)
    assert found, text
    return found.group(1)


# -- passwords ------------------------------------------------------------------------


def test_set_password_then_login_with_any_case_of_the_email(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member = _member_with_password(portal)
    assert member.credential_version == 1
    portal.clock.advance(minutes=5)
    signed_in = portal.accounts.login("  ADA@Example.com ", GOOD)
    assert signed_in.id == member.id
    assert signed_in.last_login_at == portal.clock.now()


@pytest.mark.parametrize(
    ("password", "confirm", "field", "problem"),
    [
        ("short", "short", "password", "at least 10"),
        ("password123", "password123", "password", "most common"),
        ("a" * 257, "a" * 257, "password", "at most 256"),
        ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "password", "repeat"),
        (GOOD, OTHER, "confirm", "does not match"),
        (None, None, "password", "string"),
    ],
)
def test_weak_or_unconfirmed_passwords_are_refused_and_nothing_is_stored(
    open_portal: PortalFactory, password: object, confirm: object, field: str, problem: str
) -> None:
    portal = open_portal()
    member = portal.members.invite("ada@example.com")
    with pytest.raises(ValidationError) as info:
        portal.accounts.set_password(member.id, password, confirm)  # type: ignore[arg-type]
    assert (info.value.field, problem in str(info.value)) == (field, True)
    assert portal.members.get(member.id).credential_version == 0
    with pytest.raises(InvalidCredentials):
        portal.accounts.login("ada@example.com", GOOD)


def test_every_failed_login_looks_the_same_and_costs_one_hash_check(
    open_portal: PortalFactory,
) -> None:
    hasher = CountingHasher()
    portal = open_portal(passwords=hasher)
    _member_with_password(portal)
    portal.members.invite("nopass@example.com")
    suspended = _member_with_password(portal, "sus@example.com")
    portal.members.suspend(suspended.id, reason="chargeback")
    attempts = [
        ("ada@example.com", OTHER),  # wrong password
        ("nobody@example.com", GOOD),  # unknown email
        ("nopass@example.com", GOOD),  # no password set
        ("sus@example.com", GOOD),  # right password, suspended
    ]
    messages = set()
    for email, password in attempts:
        before = hasher.verified
        with pytest.raises(InvalidCredentials) as info:
            portal.accounts.login(email, password)
        messages.add(str(info.value))
        assert hasher.verified - before == 1, email
    assert messages == {"invalid email or password"}


def test_a_hash_made_under_a_weaker_policy_is_upgraded_at_login(
    open_portal: PortalFactory,
) -> None:
    old = open_portal(passwords=Argon2Hasher(time_cost=2, memory_kib=19456))
    member = _member_with_password(old)
    new = open_portal(old.storage, passwords=Argon2Hasher(time_cost=3, memory_kib=19456))
    with new.storage.unit_of_work(new.tenant, write=False) as uow:
        before = uow.credentials.find({"member_id": member.id})[0].password_hash
    assert before.startswith("$argon2id$v=19$m=19456,t=2,p=4$")
    new.accounts.login("ada@example.com", GOOD)
    with new.storage.unit_of_work(new.tenant, write=False) as uow:
        after = uow.credentials.find({"member_id": member.id})[0].password_hash
    assert after.startswith("$argon2id$v=19$m=19456,t=3,p=4$")
    new.accounts.login("ada@example.com", GOOD)  # the new hash verifies


def test_the_default_hasher_is_argon2id_at_or_above_owasps_floor() -> None:
    stored = Argon2Hasher().hash(GOOD)
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert stored.startswith("$argon2id$")
    assert int(params["m"]) >= 19456
    assert int(params["t"]) >= 2
    assert int(params["p"]) >= 1
    with pytest.raises(Exception, match="floor"):
        Argon2Hasher(memory_kib=8192)


# -- throttling -----------------------------------------------------------------------


def test_failures_back_off_then_a_success_clears_them(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    for _ in range(5):  # free failures
        with pytest.raises(InvalidCredentials):
            portal.accounts.login("ada@example.com", OTHER)
    with pytest.raises(InvalidCredentials):
        portal.accounts.login("ada@example.com", OTHER)  # the 6th: now a wait of 1 s
    with pytest.raises(TooManyAttempts) as info:
        portal.accounts.login("ada@example.com", GOOD)  # even the right password waits
    assert info.value.retry_at == portal.clock.now() + timedelta(seconds=1)
    portal.clock.advance(seconds=1)
    portal.accounts.login("ada@example.com", GOOD)
    with pytest.raises(InvalidCredentials):  # cleared: no wait after the next failure
        portal.accounts.login("ada@example.com", OTHER)
    portal.accounts.login("ada@example.com", GOOD)


def test_unknown_emails_are_throttled_exactly_like_known_ones(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    waits = {}
    for email in ("ada@example.com", "ghost@example.com"):
        for _ in range(8):
            with pytest.raises(InvalidCredentials):
                portal.accounts.login(email, OTHER)
            portal.clock.advance(minutes=1)
        with pytest.raises(InvalidCredentials):
            portal.accounts.login(email, OTHER)
        with pytest.raises(TooManyAttempts) as info:
            portal.accounts.login(email, OTHER)
        waits[email] = info.value.retry_at - portal.clock.now()
    assert waits["ada@example.com"] == waits["ghost@example.com"] == timedelta(seconds=8)


def test_a_client_key_is_throttled_across_emails(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    for number in range(6):
        with pytest.raises(InvalidCredentials):
            portal.accounts.login(f"guess{number}@example.com", OTHER, client_key="203.0.113.9")
    with pytest.raises(TooManyAttempts):
        portal.accounts.login("fresh@example.com", OTHER, client_key="203.0.113.9")
    with pytest.raises(InvalidCredentials):  # another client is not held back
        portal.accounts.login("fresh@example.com", OTHER, client_key="198.51.100.7")


def test_never_more_than_100_failures_an_hour(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    failures = 0
    start = portal.clock.now()
    while portal.clock.now() < start + timedelta(hours=1):
        try:
            portal.accounts.login("ada@example.com", OTHER)
        except TooManyAttempts as blocked:
            portal.clock.set(max(blocked.retry_at, portal.clock.now() + timedelta(seconds=1)))
        except InvalidCredentials:
            failures += 1
    assert 5 < failures <= 100


# -- reset links ----------------------------------------------------------------------


def test_a_reset_link_works_once_and_does_not_sign_in(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher(), platform_url="https://learn.acme.test")
    member = _member_with_password(portal)
    portal.accounts.request_password_reset("ada@example.com")
    assert portal.mailer.sent == []  # queued with the change, sent by the tick
    token = _link_from_mail(portal, "ada@example.com")
    assert "https://learn.acme.test/reset-password?token=" in portal.mailer.last.text
    assert len(token) >= 43  # 256 bits, URL-safe base64
    info = portal.accounts.inspect(token)
    assert (info.purpose, info.member_id) == (TokenPurpose.PASSWORD_RESET, member.id)
    reset = portal.accounts.reset_password(token, OTHER, OTHER)
    assert reset.last_login_at is None  # not signed in by the reset
    assert reset.credential_version == member.credential_version + 1
    portal.accounts.login("ada@example.com", OTHER)
    with pytest.raises(InvalidToken):
        portal.accounts.reset_password(token, GOOD, GOOD)
    with pytest.raises(InvalidToken):
        portal.accounts.inspect(token)


def test_a_reset_link_expires_at_its_exact_instant(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    sent_at = portal.clock.now()
    portal.accounts.request_password_reset("ada@example.com")
    token = _link_from_mail(portal, "ada@example.com")
    portal.clock.set(sent_at + timedelta(minutes=30) - timedelta(microseconds=1))
    assert portal.accounts.inspect(token).expires_at == sent_at + timedelta(minutes=30)
    portal.clock.set(sent_at + timedelta(minutes=30))
    with pytest.raises(InvalidToken):
        portal.accounts.inspect(token)
    with pytest.raises(InvalidToken):
        portal.accounts.reset_password(token, OTHER, OTHER)


def test_unknown_emails_get_the_same_answer_and_no_mail(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    assert portal.accounts.request_password_reset("ghost@example.com") is None
    assert portal.accounts.request_password_reset("ada@example.com") is None
    portal.tick()
    assert [m.to for m in portal.mailer.sent] == ["ada@example.com"]


def test_at_most_five_reset_emails_per_account_in_ten_minutes(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    for _ in range(7):
        portal.accounts.request_password_reset("ada@example.com")
        portal.clock.advance(seconds=30)
    portal.tick()
    assert len(portal.mailer.sent) == 5
    portal.clock.advance(minutes=10)
    portal.accounts.request_password_reset("ada@example.com")
    portal.tick()
    assert len(portal.mailer.sent) == 6


def test_a_weak_new_password_keeps_the_token_usable(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    portal.accounts.request_password_reset("ada@example.com")
    token = _link_from_mail(portal, "ada@example.com")
    with pytest.raises(ValidationError):
        portal.accounts.reset_password(token, "short", "short")
    portal.accounts.reset_password(token, OTHER, OTHER)


@pytest.mark.parametrize("tamper", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), str.upper])
def test_tampered_tokens_are_refused(
    open_portal: PortalFactory, tamper: Callable[[str], str]
) -> None:
    portal = open_portal(passwords=CountingHasher())
    _member_with_password(portal)
    portal.accounts.request_password_reset("ada@example.com")
    token = _link_from_mail(portal, "ada@example.com")
    with pytest.raises(InvalidToken):
        portal.accounts.reset_password(tamper(token), OTHER, OTHER)
    portal.accounts.reset_password(token, OTHER, OTHER)


def test_a_password_change_ends_outstanding_links_and_sessions(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = _member_with_password(portal)
    session = portal.accounts.login("ada@example.com", GOOD).credential_version
    assert portal.accounts.check_session(member.id, session).id == member.id
    link = portal.accounts.create_magic_link(member.id)
    portal.accounts.request_password_reset("ada@example.com")
    reset = _link_from_mail(portal, "ada@example.com")
    changed = portal.accounts.set_password(member.id, OTHER, OTHER)  # the admin's change
    assert changed.credential_version == session + 1
    for token in (link.token, reset):
        with pytest.raises(InvalidToken):
            portal.accounts.inspect(token)
    with pytest.raises(InvalidToken):
        portal.accounts.check_session(member.id, session)
    assert portal.accounts.check_session(member.id, changed.credential_version)


# -- magic links ----------------------------------------------------------------------


def test_inspecting_a_magic_link_does_not_use_it_and_clicking_twice_signs_in_once(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com")
    link = portal.accounts.create_magic_link(member.id)
    assert link.url.endswith(f"/sign-in/link?token={link.token}")
    assert link.expires_at == portal.clock.now() + timedelta(minutes=15)
    for _ in range(3):  # a mail scanner opening the link
        assert portal.accounts.inspect(link.token).member_id == member.id
    assert portal.accounts.redeem(link.token).last_login_at == portal.clock.now()
    with pytest.raises(InvalidToken):
        portal.accounts.redeem(link.token)
    with pytest.raises(InvalidToken):
        portal.accounts.redeem_code("ada@example.com", link.code)  # the code went with it


def test_the_code_signs_in_on_another_device_once(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com")
    link = portal.accounts.create_magic_link(member.id)
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", link.code)
    with pytest.raises(InvalidToken):
        portal.accounts.redeem_code("someone@example.com", link.code)
    typed = link.code.lower().replace("-", " ")
    assert portal.accounts.redeem_code("ada@example.com", typed).id == member.id
    with pytest.raises(InvalidToken):
        portal.accounts.redeem(link.token)


def test_guessing_codes_is_throttled(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com")
    link = portal.accounts.create_magic_link(member.id)
    for guess in range(6):
        with pytest.raises(InvalidToken):
            portal.accounts.redeem_code("ada@example.com", f"AAAA-AAA{guess + 2}")
    with pytest.raises(TooManyAttempts):
        portal.accounts.redeem_code("ada@example.com", link.code)


def test_a_magic_link_expires_at_its_exact_instant(open_portal: PortalFactory) -> None:
    portal = open_portal(
        passwords=CountingHasher(), accounts=AccountPolicy(magic_link_lifetime=timedelta(hours=1))
    )
    member = portal.members.invite("ada@example.com")
    link = portal.accounts.create_magic_link(member.id)
    assert link.expires_at == portal.clock.now() + timedelta(hours=1)
    portal.clock.set(link.expires_at - timedelta(microseconds=1))
    assert portal.accounts.inspect(link.token).expires_at == link.expires_at
    portal.clock.set(link.expires_at)
    with pytest.raises(InvalidToken):
        portal.accounts.redeem(link.token)


def test_request_magic_link_emails_the_link_and_its_code(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com", first_name="Ada")
    portal.accounts.request_magic_link("ada@example.com")
    portal.accounts.request_magic_link("ghost@example.com")
    token = _link_from_mail(portal, "ada@example.com")
    message = portal.mailer.last
    assert [m.to for m in portal.mailer.sent] == ["ada@example.com"]
    code = re.search(r"code instead: ([A-Z2-9]{4}-[A-Z2-9]{4})", message.text)
    assert code is not None
    assert f"?token={token}" in (message.html or "")
    assert portal.accounts.redeem(token).id == member.id


def test_two_clicks_at_once_sign_in_once(open_portal: PortalFactory, backend: str) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com")
    link = portal.accounts.create_magic_link(member.id)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        try:
            portal.accounts.redeem(link.token)
            outcomes.append("signed in")
        except InvalidToken:
            outcomes.append("refused")

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "signed in"]


def test_suspended_members_cannot_use_links_or_sessions(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = _member_with_password(portal)
    link = portal.accounts.create_magic_link(member.id)
    suspended = portal.members.suspend(member.id, reason="abuse")
    assert suspended.credential_version == member.credential_version + 1
    with pytest.raises(InvalidToken):
        portal.accounts.redeem(link.token)
    with pytest.raises(InvalidToken):
        portal.accounts.check_session(member.id, suspended.credential_version)
    with pytest.raises(ValidationError) as info:
        portal.accounts.create_magic_link(member.id)
    assert info.value.field == "member_id"


# -- tenants --------------------------------------------------------------------------


def test_tokens_and_passwords_are_bound_to_their_portal(open_portal: PortalFactory) -> None:
    school = open_portal(tenant="school", passwords=CountingHasher())
    gym = open_portal(school.storage, tenant="gym", passwords=CountingHasher())
    member = _member_with_password(school)
    link = school.accounts.create_magic_link(member.id)
    school.accounts.request_password_reset("ada@example.com")
    reset = _link_from_mail(school, "ada@example.com")
    with pytest.raises(InvalidCredentials):
        gym.accounts.login("ada@example.com", GOOD)
    for call in (
        lambda: gym.accounts.inspect(link.token),
        lambda: gym.accounts.redeem(link.token),
        lambda: gym.accounts.redeem_code("ada@example.com", link.code),
        lambda: gym.accounts.reset_password(reset, OTHER, OTHER),
        lambda: gym.accounts.check_session(member.id, member.credential_version),
    ):
        with pytest.raises(InvalidToken):
            call()
    assert school.accounts.redeem(link.token).id == member.id
    school.accounts.reset_password(reset, OTHER, OTHER)


def _stored_tokens_and_mail(portal: TestPortal) -> tuple[int, int]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return uow.account_tokens.count(), uow.mail.count()


def _stored_requests(portal: TestPortal) -> list[tuple[str, str]]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return [(r.purpose.value, r.email) for r in uow.account_requests.find()]


def test_every_request_stores_the_same_thing_and_the_tick_answers_it(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(passwords=CountingHasher(), accounts=AccountPolicy(mail_limit=1))
    _member_with_password(portal)
    portal.accounts.request_password_reset("ada@example.com")
    portal.accounts.request_password_reset("ghost@example.com")  # unknown
    portal.accounts.request_password_reset("Ada@Example.com")  # over the limit of 1
    portal.accounts.request_magic_link("ghost@example.com")
    # The request calls wrote one row each, the same for known and unknown emails...
    reset, link = TokenPurpose.PASSWORD_RESET.value, TokenPurpose.MAGIC_LINK.value
    assert sorted(_stored_requests(portal)) == sorted(
        [
            (reset, "ada@example.com"),
            (reset, "ghost@example.com"),
            (reset, "Ada@Example.com"),
            (link, "ghost@example.com"),
        ]
    )
    assert _stored_tokens_and_mail(portal) == (0, 0)
    # ...and the tick sends the one email owed, and forgets every request.
    assert portal.tick().account_emails == 1
    assert _stored_requests(portal) == []
    assert _stored_tokens_and_mail(portal) == (1, 1)
    assert [m.to for m in portal.mailer.sent] == ["ada@example.com"]


# -- login links in any email ---------------------------------------------------------


def test_a_welcome_email_carries_a_fresh_single_use_login_link(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com", first_name="Ada")
    message = portal.mail.send(member.id, "welcome")
    assert message is not None
    assert message.member_id == member.id
    token = _link_from_mail(portal, "ada@example.com")
    assert "Welcome to" in portal.mailer.last.text
    assert portal.accounts.inspect(token).member_id == member.id
    assert portal.accounts.redeem(token).id == member.id
    with pytest.raises(InvalidToken):
        portal.accounts.redeem(token)
    # A second welcome is a second link; the same idempotency key sends nothing more.
    assert portal.mail.send(member.id, "welcome", idempotency_key="welcome:1") is not None
    assert portal.mail.send(member.id, "welcome", idempotency_key="welcome:1") is None
    assert _link_from_mail(portal, "ada@example.com") != token


def test_only_emails_that_use_the_login_link_mint_one(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com", first_name="Ada")
    portal.mail.send(
        member.id,
        "course_completed",
        values={"course": {"title": "Python 101", "url": "https://x/courses/1"}},
    )
    assert _stored_tokens_and_mail(portal) == (0, 1)
    portal.mail.send(member.id, "welcome")
    assert _stored_tokens_and_mail(portal) == (1, 2)


def test_a_suspended_member_gets_the_plain_sign_in_page(open_portal: PortalFactory) -> None:
    portal = open_portal(passwords=CountingHasher(), platform_url="https://learn.example.com")
    member = portal.members.invite("ada@example.com", first_name="Ada")
    portal.members.suspend(member.id, reason="chargeback")
    portal.mail.send(member.id, "welcome")
    portal.tick()
    assert "https://learn.example.com/sign-in\n" in portal.mailer.last.text
    assert _stored_tokens_and_mail(portal) == (0, 1)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p, m: p.mail.send("nope", "welcome"), "member_id"),
        (lambda p, m: p.mail.send(m, "birthday"), "kind"),
        (lambda p, m: p.mail.send(m, "welcome", values=["x"]), "values"),
        (lambda p, m: p.mail.send(m, "welcome", values={"x": object()}), "context.x"),
        (lambda p, m: p.mail.send(m, "welcome", idempotency_key=""), "idempotency_key"),
    ],
)
def test_send_validates_its_arguments_and_writes_nothing(
    open_portal: PortalFactory, call: Callable[[TestPortal, str], object], field: str
) -> None:
    portal = open_portal(passwords=CountingHasher())
    member = portal.members.invite("ada@example.com", first_name="Ada")
    with pytest.raises(ValidationError) as info:
        call(portal, member.id)
    assert info.value.field == field
    assert _stored_tokens_and_mail(portal) == (0, 0)
