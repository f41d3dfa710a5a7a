"""Members: invitation, lookup by normalized email, validation."""

from __future__ import annotations

import pytest

from membership_core import Conflict, MemberStatus, NotFound, ValidationError

from .conftest import PortalFactory


def test_invite_and_find_by_normalized_email(open_portal: PortalFactory) -> None:
    portal = open_portal()
    member = portal.members.invite(
        "  Grace.Hopper@Example.COM ", first_name="Grace", last_name="Hopper", external_ref="crm-7"
    )
    assert member.email == "Grace.Hopper@Example.COM"
    assert member.status is MemberStatus.ACTIVE
    assert member.external_ref == "crm-7"
    assert member.created_at == portal.clock.now()
    assert portal.members.find_by_email("grace.hopper@example.com") == member
    assert portal.members.get(member.id) == member
    with pytest.raises(Conflict) as info:
        portal.members.invite("GRACE.HOPPER@example.com")
    assert info.value.field == "email"


def test_list_pages_in_creation_order(open_portal: PortalFactory) -> None:
    portal = open_portal()
    made = []
    for index in range(5):
        made.append(portal.members.invite(f"m{index}@example.com").id)
        portal.clock.advance(seconds=1)
    assert [m.id for m in portal.members.list(limit=2, offset=1)] == made[1:3]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": ""}, "email"),
        ({"email": None}, "email"),
        ({"email": "a@example.com", "first_name": "x" * 101}, "first_name"),
        ({"email": "a@example.com", "external_ref": 5}, "external_ref"),
    ],
)
def test_invite_validates(
    open_portal: PortalFactory, kwargs: dict[str, object], field: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as info:
        portal.members.invite(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert portal.members.list() == []


def test_lookups_of_missing_members(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(NotFound) as info:
        portal.members.find_by_email("ghost@example.com")
    assert info.value.field == "email"
    with pytest.raises(ValidationError) as bad:
        portal.members.get("prod_1")
    assert bad.value.field == "member_id"
