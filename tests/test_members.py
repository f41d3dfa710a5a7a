"""Members: invitation, lookup by normalized email, validation."""

from __future__ import annotations

import attrs
import pytest

from membership_core import AccessReason, Conflict, MemberStatus, NotFound, ValidationError

from .conftest import PortalFactory
from .helpers import build_course


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


def test_update_changes_only_what_is_given_and_keeps_emails_unique(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    ada = portal.members.invite("ada@example.com", first_name="Ada", phone="+44 20 7946 0000")
    portal.members.invite("grace@example.com")
    updated = portal.members.update(ada.id, last_name="Lovelace", external_ref="crm-1")
    assert (updated.first_name, updated.last_name, updated.phone, updated.external_ref) == (
        "Ada",
        "Lovelace",
        "+44 20 7946 0000",
        "crm-1",
    )
    with pytest.raises(Conflict) as info:
        portal.members.update(ada.id, email=" GRACE@example.com")
    assert info.value.field == "email"
    assert portal.members.update(ada.id, email="Ada@Example.com").email == "Ada@Example.com"
    with pytest.raises(ValidationError) as bad:
        portal.members.update(ada.id, phone="call me")
    assert bad.value.field == "phone"
    assert portal.members.get(ada.id).phone == "+44 20 7946 0000"


def test_the_member_facing_profile_has_no_host_only_fields(open_portal: PortalFactory) -> None:
    portal = open_portal()
    ada = portal.members.invite("ada@example.com", first_name="Ada", external_ref="crm-secret")
    profile = portal.members.profile(ada.id)
    fields = {field.name for field in attrs.fields(type(profile))}
    assert fields.isdisjoint({"external_ref", "status", "credential_version", "email_key"})
    assert "crm-secret" not in repr(profile)
    assert (profile.email, profile.first_name) == ("ada@example.com", "Ada")


def test_suspend_and_reactivate_close_and_reopen_access(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    lesson = course.lessons[0].id
    suspended = portal.members.suspend(member, reason="chargeback")
    assert suspended.status is MemberStatus.SUSPENDED
    assert portal.access.can_view(member, lesson).reason is AccessReason.MEMBER_INACTIVE
    assert portal.members.list(status="suspended") == [suspended]
    assert portal.members.reactivate(member).status is MemberStatus.ACTIVE
    assert portal.access.can_view(member, lesson).allowed


def test_delete_removes_personal_data_and_keeps_the_records(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    purchase = portal.checkout.purchase(
        course.offer.id, email="ada@example.com", first_name="Ada", last_name="Lovelace"
    )
    member = purchase.member_id
    portal.members.update(member, phone="+44 20 7946 0000", external_ref="crm-9")
    portal.progress.complete_lesson(member, course.lessons[0].id)  # -> a queued email
    gone = portal.members.delete(member)
    assert gone.status is MemberStatus.DELETED
    assert (gone.first_name, gone.last_name, gone.phone, gone.external_ref) == ("", "", None, None)
    assert "ada" not in gone.email.casefold()
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        assert uow.mail.find({"member_id": member}) == []
        assert uow.purchases.get(purchase.id) is not None  # revenue still adds up
        assert uow.enrollments.find({"member_id": member})
    with pytest.raises(NotFound):
        portal.members.find_by_email("ada@example.com")
    with pytest.raises(NotFound):
        portal.members.update(member, first_name="Back")
    again = portal.members.invite("ada@example.com")  # the email is free again
    assert again.id != member


def test_import_is_all_or_nothing_and_skips_existing_emails(open_portal: PortalFactory) -> None:
    portal = open_portal()
    existing = portal.members.invite("ada@example.com")
    with pytest.raises(ValidationError) as info:
        portal.members.import_members(
            [{"email": "b@example.com"}, {"email": "c@example.com", "phone": "nope"}]
        )
    assert info.value.field == "rows[1].phone"
    with pytest.raises(ValidationError) as twice:
        portal.members.import_members([{"email": "b@example.com"}, {"email": "B@example.com"}])
    assert twice.value.field == "rows[1].email"
    assert [m.email for m in portal.members.list()] == ["ada@example.com"]
    result = portal.members.import_members(
        [
            {"email": "ADA@example.com"},
            {"email": "bob@example.com", "first_name": "Bob", "external_ref": "crm-2"},
        ]
    )
    assert result.existing == (existing,)
    assert [(m.email, m.first_name, m.external_ref) for m in result.created] == [
        ("bob@example.com", "Bob", "crm-2")
    ]
