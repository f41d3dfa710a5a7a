"""A tick that crashes half-way loses nothing and repeats nothing: the next one finishes it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from membership_core import AccessWindow, EndAfter
from membership_core.domain.drip import AfterDelay, DripSettings, FromAccessGrant
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course

MEMBERS = 6


class Crash(Exception):
    """The process dying mid-tick, as far as the library can tell."""


def _event_types(portal: TestPortal) -> Counter[str]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return Counter(record.type for record in uow.events.find())


def _crash_on_call(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, number: int) -> None:
    """Make ``target.name`` raise on its ``number``-th call (and work again after)."""
    original = getattr(target, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == number:
            raise Crash(f"crash in {name}, call {number}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def _drip_course(portal: TestPortal) -> tuple[str, str]:
    course = build_course(portal, lessons=2)
    product = course.product.id
    portal.drip.configure(product, DripSettings(FromAccessGrant(), "UTC"))
    portal.drip.set_rules(product, course.lessons[1].id, [AfterDelay(days=3)])
    offer = portal.offers.create_offer(
        "Ten days", [product], access_window=AccessWindow(end=EndAfter(10))
    )
    return portal.offers.publish(offer.id).id, course.lessons[1].id


@pytest.mark.parametrize("crash_at", [1, 4, MEMBERS])
def test_a_drip_tick_that_crashes_mid_batch_announces_each_member_once(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    portal = open_portal()
    offer_id, second = _drip_course(portal)
    members = [
        portal.checkout.purchase(offer_id, email=f"m{n}@example.com").member_id
        for n in range(MEMBERS)
    ]
    portal.tick()  # the first look, silently
    portal.clock.advance(days=3)
    # The batch is one transaction: a crash while advancing any member rolls it all back.
    _crash_on_call(monkeypatch, portal.drip, "_advance", crash_at)
    with pytest.raises(Crash):
        portal.tick()
    assert _event_types(portal)["LessonsUnlocked"] == 0
    assert portal.tick().lessons_unlocked == MEMBERS
    assert portal.tick().lessons_unlocked == 0
    assert _event_types(portal)["LessonsUnlocked"] == MEMBERS
    assert all(portal.access.can_view(member, second).allowed for member in members)


def test_expiry_notices_after_a_crashed_tick_come_once(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal()
    portal.tick()  # sets the notices mark
    offer_id, _ = _drip_course(portal)
    start = portal.clock.now()
    for n in range(MEMBERS):
        portal.checkout.purchase(offer_id, email=f"m{n}@example.com")
    portal.tick()
    # Ten days of access: the reminder 7 days before the end, then the end.
    for days, kind in ((3, "AccessExpiring"), (10, "AccessExpired")):
        portal.clock.set(start + timedelta(days=days))
        _crash_on_call(monkeypatch, portal.access, "_record", 3)
        with pytest.raises(Crash):
            portal.tick()
        monkeypatch.undo()
        assert _event_types(portal)[kind] == 0
        assert portal.tick().access_notices == MEMBERS
        assert portal.tick().access_notices == 0
        assert _event_types(portal)[kind] == MEMBERS


def test_events_recorded_before_a_crash_in_dispatch_are_delivered_by_the_next_tick(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    # Completing the course commits CourseCompleted; the crash hits its dispatch.
    _crash_on_call(monkeypatch, portal._events, "dispatch_pending", 1)
    with pytest.raises(Crash):
        portal.progress.complete_lesson(member, course.lessons[0].id)
    monkeypatch.undo()
    assert portal.certificates.for_member(member) == []
    portal.tick()
    portal.tick()
    assert len(portal.certificates.for_member(member)) == 1
    assert len(portal.mailer.messages_to("a@example.com")) == 1  # the congratulations, once
