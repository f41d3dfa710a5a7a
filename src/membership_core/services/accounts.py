"""Member credentials: passwords, sign-in, reset links and magic links. ``portal.accounts``.

Passwords are stored only as slow salted hashes (:class:`PasswordHasher`,
argon2id by default). Reset and sign-in tokens carry 256 random bits from
:mod:`secrets`, are stored only as their SHA-256, work once, expire, and
belong to their portal: storage is scoped by portal, so a token of one portal
is unknown in every other. Answers never tell whether an email has an account,
and failed attempts are throttled per email and per host-supplied client key.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import attrs

from .. import _validate as v
from ..domain.credentials import (
    AccountPolicy,
    AccountRequest,
    AccountToken,
    Credential,
    MagicLink,
    TokenInfo,
    TokenPurpose,
    hash_code,
    hash_token,
    password_problem,
)
from ..domain.members import Member, MemberStatus, email_key
from ..domain.settings import PortalSettings
from ..errors import ConfigurationError, InvalidToken, TooManyAttempts, ValidationError
from ..ports.passwords import PasswordHasher
from ..ports.storage import UnitOfWork
from ..ports.throttle import AttemptThrottle
from ._context import Context, Service
from ._tokens import mint_token
from .mail import MailService, member_values, portal_values

__all__ = ["AccountsService", "InvalidCredentials", "email_throttle_key"]

_LINK_INVALID = "the link is invalid, used or expired"


class InvalidCredentials(InvalidToken):
    """The email and password do not match an active account (which one is wrong is not said)."""

    def __init__(self) -> None:
        super().__init__("invalid email or password")


class AccountsService(Service):
    """Passwords, sign-in and reset links of members. ``portal.accounts``.

    >>> from membership_core.testing import make_test_portal
    >>> portal = make_test_portal()
    >>> ada = portal.members.invite("ada@example.com")
    >>> _ = portal.accounts.set_password(ada.id, "correct horse battery", "correct horse battery")
    >>> portal.accounts.login("ADA@example.com", "correct horse battery").id == ada.id
    True
    """

    def __init__(
        self,
        context: Context,
        mail: MailService,
        hasher: PasswordHasher | None,
        throttle: AttemptThrottle,
        policy: AccountPolicy,
    ) -> None:
        super().__init__(context)
        self._mail = mail
        self._hasher_or_none = hasher
        self._throttle = throttle
        self.policy = policy
        self._dummy: str | None = None

    @property
    def _hasher(self) -> PasswordHasher:
        if self._hasher_or_none is None:
            raise ConfigurationError(
                "passwords need a password hasher: install membership_core[security] "
                "or pass Portal.open(..., passwords=...)"
            )
        return self._hasher_or_none

    # -- passwords --------------------------------------------------------------------

    def set_password(self, member_id: str, password: str, confirm: str) -> Member:
        """Set a member's password (an admin's "Change Password").

        ``confirm`` must repeat it. The password must be 10 to 256 characters
        and not one of the most common ones. The member's outstanding reset
        and magic-link tokens stop working, and their ``credential_version``
        goes up (a host ends the member's other sessions on it).
        """
        v.identifier("member_id", member_id, "mem")
        self._check_new_password(password, confirm)
        hashed = self._hasher.hash(password)
        with self._ctx.uow() as uow:
            member = self._require_for_update(uow.members, "member", member_id, "member_id")
            if member.status is MemberStatus.DELETED:
                raise ValidationError("member_id", "the member was deleted")
            member = self._store_password(uow, member, hashed)
            uow.commit()
        return member

    def login(self, email: str, password: str, *, client_key: str | None = None) -> Member:
        """The active member with this email and password, or :class:`InvalidCredentials`.

        An unknown email, a wrong password, a member without a password and a
        suspended or deleted member all give the same error after the same
        slow hash check, so neither the answer nor its timing tells which.
        Failures are throttled per email and per ``client_key`` (the host's
        name for the client, such as its IP address): past the policy,
        :class:`~membership_core.errors.TooManyAttempts` comes before any
        check. A hash made with weaker parameters than today's is upgraded.
        """
        email = v.email("email", email)
        if not isinstance(password, str):
            raise ValidationError("password", "must be a string")
        keys = self._keys(email, client_key)
        now = self._ctx.now()
        self._check_throttle(keys, now)
        with self._ctx.uow(write=False) as uow:
            found = uow.members.find({"email_key": email_key(email)}, limit=1)
            member = found[0] if found else None
            credential = None
            if member is not None:
                stored = uow.credentials.find({"member_id": member.id}, limit=1)
                credential = stored[0] if stored else None
        if credential is None:
            self._hasher.verify(self._dummy_hash(), password)  # the same work either way
            matched = False
        else:
            matched = self._hasher.verify(credential.password_hash, password)
        if not matched or member is None or member.status is not MemberStatus.ACTIVE:
            self._failed(keys, now)
            raise InvalidCredentials()
        assert credential is not None  # matched implies a stored hash
        self._throttle.record_success(keys[0])
        new_hash = None
        if self._hasher.needs_rehash(credential.password_hash):
            new_hash = self._hasher.hash(password)
        with self._ctx.uow() as uow:
            current = self._require_for_update(uow.members, "member", member.id, "email")
            member = attrs.evolve(current, last_login_at=now)
            uow.members.update(member)
            if new_hash is not None:
                uow.credentials.update(
                    attrs.evolve(credential, password_hash=new_hash, changed_at=now)
                )
            uow.commit()
        return member

    # -- reset links --------------------------------------------------------------------

    def request_password_reset(self, email: str) -> None:
        """Email a single-use password reset link, if ``email`` has an active account.

        Returns nothing either way, so a caller cannot tell known emails from unknown
        ones. At most ``policy.mail_limit`` emails per account in ``policy.mail_window``
        (5 in 10 minutes); more requests are dropped silently. The link is built from
        the portal's base URL (never from a request's Host header) and works for
        ``policy.reset_lifetime`` (30 minutes). This call only stores the request, the
        same way for every email; the next ``tick()`` (or :meth:`send_requested`) looks
        the account up and sends the email, so the call takes the same time for known
        and unknown emails and never waits for a mail server.
        """
        self._send_link(email, TokenPurpose.PASSWORD_RESET)

    def reset_password(
        self, token: str, password: str, confirm: str, *, client_key: str | None = None
    ) -> Member:
        """Set a new password with a reset link's token; the token then stops working.

        Raises :class:`~membership_core.errors.InvalidToken` for a token that
        is unknown (or another portal's), used, or expired, and
        ``ValidationError`` for a weak password (the token stays usable). It
        does not sign the member in: the host asks them to log in with the
        new password. Every other outstanding token of the member stops
        working and the ``credential_version`` goes up, ending old sessions.
        """
        self._check_new_password(password, confirm)
        keys = self._keys(None, client_key)
        now = self._ctx.now()
        self._check_throttle(keys, now)
        hashed = self._hasher.hash(password)
        with self._ctx.uow() as uow:
            stored = self._usable_token(uow, token, TokenPurpose.PASSWORD_RESET, now)
            member = None if stored is None else self._active_member(uow, stored.member_id)
            if member is not None:
                member = self._store_password(uow, member, hashed)
                uow.commit()
        if member is None:
            self._failed(keys, now)  # after the unit of work: the count has its own
            raise InvalidToken(_LINK_INVALID)
        return member

    # -- magic links --------------------------------------------------------------------

    def create_magic_link(self, member_id: str) -> MagicLink:
        """A single-use sign-in link and code for an active member, for a host's own email.

        The link works for ``policy.magic_link_lifetime`` (15 minutes). The
        returned value is the only place its secret exists in clear.
        """
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow() as uow:
            member = self._require(uow.members, "member", member_id, "member_id")
            if member.status is not MemberStatus.ACTIVE:
                raise ValidationError("member_id", f"the member is {member.status.value}")
            link = self._mint(uow, member, TokenPurpose.MAGIC_LINK)
            uow.commit()
        assert isinstance(link, MagicLink)
        return link

    def request_magic_link(self, email: str) -> None:
        """Email a sign-in link (with its code), if ``email`` has an active account.

        Like :meth:`request_password_reset`: the same answer and work for
        unknown emails, the same per-account limit, and the email goes out
        with the next ``tick()``.
        """
        self._send_link(email, TokenPurpose.MAGIC_LINK)

    def inspect(self, token: str) -> TokenInfo:
        """What a reset or sign-in token is for and whose it is, without using it.

        Mail scanners open links before members do: a host's link page calls
        this to show "Continue as ada@example.com" and a button, and only the
        member's click (:meth:`redeem`) uses the token. Raises
        :class:`~membership_core.errors.InvalidToken` when it is unknown,
        used or expired.
        """
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            stored = self._usable_token(uow, token, None, now)
            member = (
                None if stored is None else self._active_member(uow, stored.member_id, lock=False)
            )
        if stored is None or member is None:
            raise InvalidToken(_LINK_INVALID)
        return TokenInfo(stored.purpose, member.id, member.email, stored.expires_at)

    def redeem(self, token: str, *, client_key: str | None = None) -> Member:
        """Sign a member in with a magic link's token: once; a second click is refused.

        Returns the member (with ``last_login_at`` now). Two clicks at the
        same moment sign in once: the token's row is locked while it is used.
        """
        keys = self._keys(None, client_key)
        now = self._ctx.now()
        self._check_throttle(keys, now)
        with self._ctx.uow() as uow:
            stored = self._usable_token(uow, token, TokenPurpose.MAGIC_LINK, now, lock=True)
            member = None if stored is None else self._active_member(uow, stored.member_id)
            if stored is not None and member is not None:
                member = self._sign_in(uow, stored, member, now)
                uow.commit()
        if member is None:
            self._failed(keys, now)
            raise InvalidToken(_LINK_INVALID)
        return member

    def redeem_code(self, email: str, code: str, *, client_key: str | None = None) -> Member:
        """Sign in with the short code that came with a magic link, typed on another device.

        Needs the email too: a code is short, so it is only checked against
        that account's outstanding links, and failures are throttled per
        email and ``client_key``. Using the code uses its link, and the other way round.
        """
        email = v.email("email", email)
        if not isinstance(code, str):
            raise ValidationError("code", "must be a string")
        keys = self._keys(email, client_key)
        now = self._ctx.now()
        self._check_throttle(keys, now)
        with self._ctx.uow() as uow:
            found = uow.members.find({"email_key": email_key(email)}, limit=1)
            member = found[0] if found and found[0].status is MemberStatus.ACTIVE else None
            matched = None
            if member is not None:
                for candidate in uow.account_tokens.find(
                    {"member_id": member.id, "purpose": TokenPurpose.MAGIC_LINK}
                ):
                    if (
                        candidate.usable(now)
                        and candidate.code_hash is not None
                        and hmac.compare_digest(candidate.code_hash, hash_code(candidate.id, code))
                    ):
                        matched = uow.account_tokens.get_for_update(candidate.id)
            signed_in = None
            if matched is not None and member is not None and matched.usable(now):
                signed_in = self._sign_in(uow, matched, member, now)
                uow.commit()
        if signed_in is None:
            self._failed(keys, now)
            raise InvalidToken("the code is invalid, used or expired")
        self._throttle.record_success(keys[0])
        return signed_in

    # -- sessions ---------------------------------------------------------------------

    def check_session(self, member_id: str, credential_version: int) -> Member:
        """The member, if a session made at ``credential_version`` is still good.

        A host stores the member's ``credential_version`` in its session at
        sign-in and calls this on each request (or now and then): a password
        change, a reset, a suspension or a deletion raises the version, so
        every older session gets :class:`~membership_core.errors.InvalidToken`.
        """
        v.identifier("member_id", member_id, "mem")
        v.integer("credential_version", credential_version, minimum=0)
        with self._ctx.uow(write=False) as uow:
            member = uow.members.get(member_id)
        if (
            member is None
            or member.status is not MemberStatus.ACTIVE
            or member.credential_version != credential_version
        ):
            raise InvalidToken("the session has ended; sign in again")
        return member

    # -- helpers ------------------------------------------------------------------------

    def _send_link(self, email: str, purpose: TokenPurpose) -> None:
        """Store the request; the tick answers it (see :class:`AccountRequest`)."""
        email = v.email("email", email)
        with self._ctx.uow() as uow:
            uow.account_requests.add(
                AccountRequest(self._ctx.ids.new("acr"), purpose, email, self._ctx.now())
            )
            uow.commit()

    def send_requested(self, *, limit: int = 100) -> int:
        """Answer waiting reset and sign-in requests, oldest first; run by ``tick()``.

        Each request of an active account within its limit gets its token and
        its email queued (sent right after); every request is then deleted.
        Returns how many emails were queued. Safe from several workers at once:
        each claims its own requests.
        """
        v.integer("limit", limit, minimum=1)
        now = self._ctx.now()
        queued = 0
        with self._ctx.uow() as uow:
            for request in uow.account_requests.find_due(
                "requested_at", now, limit=limit, claim=True
            ):
                queued += self._answer(uow, request, now)
                uow.account_requests.delete(request.id)
            uow.commit()
        if queued:
            self._committed()
        return queued

    def _answer(self, uow: UnitOfWork, request: AccountRequest, now: datetime) -> bool:
        """Queue the email ``request`` asks for, if it has an active account within its limit."""
        found = uow.members.find({"email_key": email_key(request.email)}, limit=1)
        if not found or found[0].status is not MemberStatus.ACTIVE:
            return False
        member = self._require_for_update(uow.members, "member", found[0].id, "email")
        purpose = request.purpose
        recent = uow.account_tokens.find({"member_id": member.id, "purpose": purpose})
        window_start = request.requested_at - self.policy.mail_window
        if sum(window_start < t.created_at <= now for t in recent) >= self.policy.mail_limit:
            return False  # dropped silently
        kind = "password_reset" if purpose is TokenPurpose.PASSWORD_RESET else "magic_link"
        link = self._mint(uow, member, purpose)
        code = link.code if isinstance(link, MagicLink) else ""
        url = link.url if isinstance(link, MagicLink) else link
        settings = self._settings(uow)
        queued = self._mail.queue(
            uow,
            kind=kind,
            to=member.email,
            context=self._link_context(settings, self._base_url(uow), member, url, code),
            idempotency_key=f"{kind}:{request.id}",
            member_id=member.id,
            settings=settings,
        )
        return queued is not None

    @staticmethod
    def _link_context(
        settings: PortalSettings, base_url: str, member: Member, url: str, code: str
    ) -> Any:
        values: dict[str, Any] = {
            "member": member_values(member),
            "portal": portal_values(settings, base_url),
        }
        if code:
            values["login_url"] = url
            values["login_code"] = code
        else:
            values["reset_url"] = url
        return values

    def _mint(self, uow: UnitOfWork, member: Member, purpose: TokenPurpose) -> MagicLink | str:
        return mint_token(self._ctx, uow, member, purpose, self.policy)

    @staticmethod
    def _usable_token(
        uow: UnitOfWork,
        token: object,
        purpose: TokenPurpose | None,
        now: datetime,
        *,
        lock: bool = False,
    ) -> AccountToken | None:
        if not isinstance(token, str) or not 20 <= len(token) <= 200:
            return None
        found = uow.account_tokens.find({"token_hash": hash_token(token)}, limit=1)
        stored = found[0] if found else None
        if stored is not None and lock:
            stored = uow.account_tokens.get_for_update(stored.id)
        if stored is None or not stored.usable(now):
            return None
        if purpose is not None and stored.purpose is not purpose:
            return None
        return stored

    @staticmethod
    def _active_member(uow: UnitOfWork, member_id: str, *, lock: bool = True) -> Member | None:
        member = uow.members.get_for_update(member_id) if lock else uow.members.get(member_id)
        return member if member is not None and member.status is MemberStatus.ACTIVE else None

    @staticmethod
    def _sign_in(uow: UnitOfWork, token: AccountToken, member: Member, now: datetime) -> Member:
        uow.account_tokens.update(attrs.evolve(token, used_at=now))
        member = attrs.evolve(member, last_login_at=now)
        uow.members.update(member)
        return member

    def _store_password(self, uow: UnitOfWork, member: Member, hashed: str) -> Member:
        """Save the hash, end every outstanding token, bump the credential version."""
        now = self._ctx.now()
        found = uow.credentials.find({"member_id": member.id}, limit=1)
        if found:
            uow.credentials.update(attrs.evolve(found[0], password_hash=hashed, changed_at=now))
        else:
            uow.credentials.add(Credential(self._ctx.ids.new("crd"), member.id, hashed, now))
        return end_credentials(uow, member, now)

    @staticmethod
    def _keys(email: str | None, client_key: str | None) -> list[str]:
        keys = [] if email is None else [email_throttle_key(email)]
        if client_key is not None:
            keys.append(f"client:{v.text('client_key', client_key, max_length=200)}")
        return keys

    def _check_throttle(self, keys: list[str], now: datetime) -> None:
        waits = [self._throttle.blocked_until(key, now) for key in keys]
        until = max((w for w in waits if w is not None), default=None)
        if until is not None:
            raise TooManyAttempts(until)

    def _failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            self._throttle.record_failure(key, now)

    @staticmethod
    def _check_new_password(password: object, confirm: object) -> None:
        if not isinstance(password, str):
            raise ValidationError("password", "must be a string")
        problem = password_problem(password)
        if problem is not None:
            raise ValidationError("password", problem)
        if confirm != password:
            raise ValidationError("confirm", "does not match the password")

    def _dummy_hash(self) -> str:
        """A hash to check unknown emails against, made once, so both paths cost the same."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy


def email_throttle_key(email: str) -> str:
    """The attempt-throttle key of an email (the same for known and unknown ones)."""
    return f"email:{email_key(email)}"


def end_credentials(uow: UnitOfWork, member: Member, now: datetime) -> Member:
    """End a member's outstanding tokens and bump the credential version (in ``uow``).

    For a password change or reset, a suspension and a deletion: every link
    sent before stops working, and every session made before ends.
    """
    for token in uow.account_tokens.find({"member_id": member.id}):
        if token.used_at is None:
            uow.account_tokens.update(attrs.evolve(token, used_at=now))
    member = attrs.evolve(member, credential_version=member.credential_version + 1)
    uow.members.update(member)
    return member


_NOBODY = Member(
    "mem_nobody",
    "nobody@example.invalid",
    "nobody@example.invalid",
    "",
    "",
    MemberStatus.ACTIVE,
    datetime.min.replace(tzinfo=UTC),
    None,
    None,
)
