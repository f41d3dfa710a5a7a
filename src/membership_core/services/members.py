"""Member accounts of a portal (kept apart from the host's own users). ``portal.members``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .. import _validate as v
from ..domain.events import (
    MemberCreated,
    MemberDeleted,
    MemberReactivated,
    MemberSuspended,
    MemberUpdated,
)
from ..domain.members import Member, MemberProfile, MemberStatus, anonymized, email_key
from ..domain.throttle import counter_id
from ..errors import Conflict, NotFound, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Service
from ._unset import UNSET, _Unset
from .accounts import email_throttle_key, end_credentials

__all__ = ["ImportResult", "MembersService"]

_PHONE_CHARACTERS = frozenset("+0123456789 ()-./")


@attrs.frozen
class ImportResult:
    """What :meth:`MembersService.import_members` did: who was created, who existed already."""

    created: tuple[Member, ...]
    existing: tuple[Member, ...]


class MembersService(Service):
    """Create, find, change, suspend and delete members. ``portal.members``."""

    def invite(
        self,
        email: str,
        *,
        first_name: str = "",
        last_name: str = "",
        phone: str | None = None,
        external_ref: str | None = None,
    ) -> Member:
        """Create a member by admin invitation; ``Conflict`` if the email is taken.

        Emails are unique per portal, compared trimmed and case-insensitively,
        and stored as given. ``external_ref`` links the member to a contact
        in the host's CRM; the member never sees it.
        """
        values = _fields(email, first_name, last_name, phone, external_ref, "")
        with self._ctx.uow() as uow:
            if uow.members.find({"email_key": email_key(values["email"])}, limit=1):
                raise Conflict(
                    f"a member with email {values['email']!r} already exists", field="email"
                )
            member = self._create(uow, **values, source="invite")
            uow.commit()
        self._committed()
        return member

    def import_members(self, rows: Iterable[Mapping[str, Any]]) -> ImportResult:
        """Create members from rows (mappings) of ``email`` and optional details.

        A row may hold ``email``, ``first_name``, ``last_name``, ``phone`` and
        ``external_ref``.

        All or nothing: every row is checked first, and one bad row (its
        field named as ``rows[3].email``) imports none. Emails that already
        have a member are left alone and listed in ``existing``; an email
        twice in the rows is an error.
        """
        if isinstance(rows, (str, bytes, Mapping)):
            raise ValidationError("rows", "must be a list of rows")
        cleaned: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValidationError(f"rows[{index}]", "must be a mapping of fields")
            unknown = set(row) - {"email", "first_name", "last_name", "phone", "external_ref"}
            if unknown:
                raise ValidationError(f"rows[{index}]", f"unknown fields {sorted(unknown)}")
            values = _fields(
                row.get("email"),
                row.get("first_name", ""),
                row.get("last_name", ""),
                row.get("phone"),
                row.get("external_ref"),
                f"rows[{index}].",
            )
            key = email_key(values["email"])
            if key in seen:
                raise ValidationError(f"rows[{index}].email", f"repeats rows[{seen[key]}]")
            seen[key] = index
            cleaned.append(values)
        created: list[Member] = []
        existing: list[Member] = []
        with self._ctx.uow() as uow:
            found = {m.email_key: m for m in uow.members.find_in("email_key", sorted(seen))}
            for values in cleaned:
                member = found.get(email_key(values["email"]))
                if member is not None:
                    existing.append(member)
                else:
                    created.append(self._create(uow, **values, source="import"))
            uow.commit()
        self._committed()
        return ImportResult(tuple(created), tuple(existing))

    def get(self, member_id: str) -> Member:
        """The member, or ``NotFound``."""
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.members, "member", member_id, "member_id")

    def profile(self, member_id: str) -> MemberProfile:
        """What the member's own profile page may show: no host-only fields.

        >>> from membership_core.testing import make_test_portal
        >>> portal = make_test_portal()
        >>> ada = portal.members.invite("ada@example.com", external_ref="crm-42")
        >>> hasattr(portal.members.profile(ada.id), "external_ref")
        False
        """
        return self.get(member_id).profile

    def find_by_email(self, email: str) -> Member:
        """The member with this email (compared trimmed and case-insensitively)."""
        email = v.email("email", email)
        with self._ctx.uow(write=False) as uow:
            found = uow.members.find({"email_key": email_key(email)}, limit=1)
        if not found:
            raise NotFound("member", email, field="email")
        return found[0]

    def list(
        self, *, status: MemberStatus | str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Member]:
        """Members ordered by creation, optionally of one ``status``."""
        where = {} if status is None else {"status": v.choice("status", status, MemberStatus)}
        v.integer("limit", limit, minimum=1)
        v.integer("offset", offset, minimum=0)
        with self._ctx.uow(write=False) as uow:
            return uow.members.find(where, order_by=["created_at"], limit=limit, offset=offset)

    def update(
        self,
        member_id: str,
        *,
        email: str | _Unset = UNSET,
        first_name: str | _Unset = UNSET,
        last_name: str | _Unset = UNSET,
        phone: str | _Unset | None = UNSET,
        external_ref: str | _Unset | None = UNSET,
    ) -> Member:
        """Change some of a member's details (an admin's edit); the rest stay.

        A new email must be free in the portal (``Conflict`` naming ``email``).
        Records ``MemberUpdated`` with the names of the changed fields.
        """
        v.identifier("member_id", member_id, "mem")
        clean: dict[str, Any] = {}
        if not isinstance(email, _Unset):
            clean["email"] = v.email("email", email)
            clean["email_key"] = email_key(clean["email"])
        if not isinstance(first_name, _Unset):
            clean["first_name"] = v.text("first_name", first_name, max_length=100, allow_empty=True)
        if not isinstance(last_name, _Unset):
            clean["last_name"] = v.text("last_name", last_name, max_length=100, allow_empty=True)
        if not isinstance(phone, _Unset):
            clean["phone"] = _phone("phone", phone)
        if not isinstance(external_ref, _Unset):
            clean["external_ref"] = v.optional_text("external_ref", external_ref, max_length=200)
        with self._ctx.uow() as uow:
            member = self._live(uow, member_id)
            new_key = clean.get("email_key", member.email_key)
            if new_key != member.email_key and uow.members.find({"email_key": new_key}, limit=1):
                raise Conflict(
                    f"a member with email {clean['email']!r} already exists", field="email"
                )
            updated = attrs.evolve(member, **clean)
            changed = tuple(
                name
                for name in clean
                if name != "email_key" and getattr(member, name) != clean[name]
            )
            if changed:
                uow.members.update(updated)
                self._record(uow, MemberUpdated, member_id=member.id, fields=changed)
                uow.commit()
        self._committed()
        return updated

    def suspend(self, member_id: str, *, reason: str) -> Member:
        """Suspend a member: no sign-in, no access, every session and link ended.

        Their grants are kept (:meth:`reactivate` restores everything). The
        ``credential_version`` goes up, so a host's old sessions end.
        """
        v.identifier("member_id", member_id, "mem")
        reason = v.text("reason", reason, max_length=500)
        with self._ctx.uow() as uow:
            member = self._live(uow, member_id)
            if member.status is MemberStatus.SUSPENDED:
                return member
            member = end_credentials(
                uow, attrs.evolve(member, status=MemberStatus.SUSPENDED), self._ctx.now()
            )
            self._record(uow, MemberSuspended, member_id=member.id, reason=reason)
            uow.commit()
        self._committed()
        return member

    def reactivate(self, member_id: str) -> Member:
        """Make a suspended member active again (their access comes back with them)."""
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow() as uow:
            member = self._live(uow, member_id)
            if member.status is MemberStatus.ACTIVE:
                return member
            member = attrs.evolve(member, status=MemberStatus.ACTIVE)
            uow.members.update(member)
            self._record(uow, MemberReactivated, member_id=member.id)
            uow.commit()
        self._committed()
        return member

    def delete(self, member_id: str) -> Member:
        """Remove a member's personal data, keeping the anonymous records revenue needs.

        The member record stays under its id with no name, phone, CRM link
        or real email (see :func:`~membership_core.domain.members.anonymized`);
        the password, tokens and failed-attempt counters go, purchases lose
        their checkout answers, and mail to the member that is still queued or
        kept in the outbox is removed. Purchases, enrollments, completions and
        certificates stay, tied to the anonymous id. The email is free again.
        """
        v.identifier("member_id", member_id, "mem")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            member = self._live(uow, member_id)
            email = member.email
            gone = end_credentials(uow, anonymized(member), now)
            for credential in uow.credentials.find({"member_id": member.id}):
                uow.credentials.delete(credential.id)
            for token in uow.account_tokens.find({"member_id": member.id}):
                uow.account_tokens.delete(token.id)
            counter = uow.attempt_counters.get(counter_id(email_throttle_key(email)))
            if counter is not None:
                uow.attempt_counters.delete(counter.id)
            for purchase in uow.purchases.find({"member_id": member.id}):
                if purchase.contact:
                    uow.purchases.update(attrs.evolve(purchase, contact={}))
            for message in uow.mail.find({"member_id": member.id}):
                uow.mail.delete(message.id)
            self._record(uow, MemberDeleted, member_id=member.id)
            uow.commit()
        self._committed()
        return gone

    def _live(self, uow: UnitOfWork, member_id: str) -> Member:
        """The member, locked, unless deleted (a deleted member cannot be changed)."""
        member = self._require_for_update(uow.members, "member", member_id, "member_id")
        if member.status is MemberStatus.DELETED:
            raise NotFound("member", member_id, field="member_id")
        return member

    def _create(
        self,
        uow: UnitOfWork,
        *,
        email: str,
        first_name: str,
        last_name: str,
        phone: str | None = None,
        external_ref: str | None = None,
        source: str,
    ) -> Member:
        member = Member(
            self._ctx.ids.new("mem"),
            email,
            email_key(email),
            first_name,
            last_name,
            MemberStatus.ACTIVE,
            self._ctx.now(),
            None,
            external_ref,
            phone=phone,
        )
        uow.members.add(member)
        self._record(uow, MemberCreated, member_id=member.id, source=source)
        return member

    def _find_or_create(
        self, uow: UnitOfWork, email: str, first_name: str, last_name: str, *, source: str
    ) -> Member:
        found = uow.members.find({"email_key": email_key(email)}, limit=1)
        if found:
            return found[0]
        return self._create(
            uow, email=email, first_name=first_name, last_name=last_name, source=source
        )


def _phone(field: str, value: object) -> str | None:
    phone = v.optional_text(field, value, max_length=40)
    if phone is not None and (
        not set(phone) <= _PHONE_CHARACTERS or sum(ch.isdigit() for ch in phone) < 5
    ):
        raise ValidationError(field, f"{phone!r} is not a phone number")
    return phone


def _fields(
    email: object,
    first_name: object,
    last_name: object,
    phone: object,
    external_ref: object,
    prefix: str,
) -> dict[str, Any]:
    """A new member's validated fields; errors name ``prefix`` + the field."""
    return {
        "email": v.email(f"{prefix}email", email),
        "first_name": v.text(f"{prefix}first_name", first_name, max_length=100, allow_empty=True),
        "last_name": v.text(f"{prefix}last_name", last_name, max_length=100, allow_empty=True),
        "phone": _phone(f"{prefix}phone", phone),
        "external_ref": v.optional_text(f"{prefix}external_ref", external_ref, max_length=200),
    }
