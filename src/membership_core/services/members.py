"""Member accounts of a portal (kept apart from the host's own users)."""

from __future__ import annotations

from .. import _validate as v
from ..domain.events import MemberCreated
from ..domain.members import Member, MemberStatus, email_key
from ..errors import Conflict, NotFound
from ..ports.storage import UnitOfWork
from ._context import Service

__all__ = ["MembersService"]


class MembersService(Service):
    """Create, find and read members. ``portal.members``."""

    def invite(
        self,
        email: str,
        *,
        first_name: str = "",
        last_name: str = "",
        external_ref: str | None = None,
    ) -> Member:
        """Create a member by admin invitation; ``Conflict`` if the email is taken."""
        email = v.email("email", email)
        first = v.text("first_name", first_name, max_length=100, allow_empty=True)
        last = v.text("last_name", last_name, max_length=100, allow_empty=True)
        ref = v.optional_text("external_ref", external_ref, max_length=200)
        with self._ctx.uow() as uow:
            if uow.members.find({"email_key": email_key(email)}, limit=1):
                raise Conflict(f"a member with email {email!r} already exists", field="email")
            member = self._create(uow, email, first, last, ref, source="invite")
            uow.commit()
        self._committed()
        return member

    def get(self, member_id: str) -> Member:
        """The member, or ``NotFound``."""
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.members, "member", member_id, "member_id")

    def find_by_email(self, email: str) -> Member:
        """The member with this email (compared trimmed and case-insensitively)."""
        email = v.email("email", email)
        with self._ctx.uow(write=False) as uow:
            found = uow.members.find({"email_key": email_key(email)}, limit=1)
        if not found:
            raise NotFound("member", email, field="email")
        return found[0]

    def list(self, *, limit: int = 100, offset: int = 0) -> list[Member]:
        """Members ordered by creation."""
        v.integer("limit", limit, minimum=1)
        v.integer("offset", offset, minimum=0)
        with self._ctx.uow(write=False) as uow:
            return uow.members.find(order_by=["created_at"], limit=limit, offset=offset)

    def _create(
        self,
        uow: UnitOfWork,
        email: str,
        first_name: str,
        last_name: str,
        external_ref: str | None,
        *,
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
        return self._create(uow, email, first_name, last_name, None, source=source)
