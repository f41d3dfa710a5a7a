"""One converter for every public value: JSON-safe out, the same value back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import membership_core
from membership_core import (
    AccessDecision,
    AccessReason,
    CourseCompleted,
    DomainEvent,
    Money,
    ValidationError,
    structure,
    unstructure,
)
from membership_core.domain.events import EVENT_TYPES

from . import factories as f
from .conftest import PortalFactory
from .helpers import build_course


@pytest.mark.parametrize("name", sorted(f.BUILDERS))
def test_every_stored_record_round_trips_through_json(name: str) -> None:
    value = f.BUILDERS[name]()
    data = json.loads(json.dumps(unstructure(value)))
    assert structure(data, type(value)) == value


def test_live_values_round_trip(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    purchase = portal.checkout.purchase(course.offer.id, email="a@example.com")
    outline = portal.access.outline(purchase.member_id, course.product.id)
    decision = portal.access.can_view(purchase.member_id, course.lessons[0].id)
    for value in [
        outline,
        decision,
        purchase,
        course.offer,
        portal.settings.site(),
        portal.members.get(purchase.member_id),
    ]:
        data = json.loads(json.dumps(unstructure(value)))
        assert structure(data, type(value)) == value


aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(st.sampled_from(sorted(EVENT_TYPES)), aware, st.text(min_size=1, max_size=20))
def test_every_event_type_round_trips_tagged(name: str, when: datetime, text: str) -> None:
    cls = EVENT_TYPES[name]
    values: dict[str, object] = {"id": "evt_1", "occurred_at": when}
    for field in attrs.fields(cls):
        if field.name not in values:
            kind = str(field.type)
            if "tuple" in kind:
                values[field.name] = (text,)
            elif "datetime" in kind:
                values[field.name] = when
            elif kind in ("int", "<class 'int'>"):
                values[field.name] = len(text)
            else:
                values[field.name] = text
    event = cls(**values)
    data = json.loads(json.dumps(unstructure(event)))
    assert data["type"] == name
    assert structure(data, DomainEvent) == event
    assert structure(data, cls) == event


@given(st.integers(-(10**15), 10**15), st.sampled_from(["USD", "JPY", "KWD"]))
def test_money_round_trips(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert structure(unstructure(money), Money) == money


@given(aware, st.sampled_from(list(AccessReason)), st.booleans())
def test_access_decision_round_trips(when: datetime, reason: AccessReason, allowed: bool) -> None:
    decision = AccessDecision(allowed, reason, when)
    assert structure(unstructure(decision), AccessDecision) == decision


def test_datetimes_keep_their_instant_and_naive_ones_are_refused() -> None:
    event = CourseCompleted(
        id="evt_1", occurred_at=datetime(2026, 3, 1, 12, tzinfo=UTC), member_id="m", product_id="p"
    )
    data = unstructure(event)
    assert data["occurred_at"] == "2026-03-01T12:00:00+00:00"
    data["occurred_at"] = "2026-03-01T13:00:00+01:00"
    assert structure(data, DomainEvent).occurred_at == event.occurred_at + timedelta(0)
    data["occurred_at"] = "2026-03-01T12:00:00"
    with pytest.raises(ValidationError):
        structure(data, DomainEvent)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": 1, "currency": "USD", "extra": 1}, "extra"),
        ({"amount": "1", "currency": "USD"}, "amount"),
        ({"amount": 1}, "currency"),
        ({"amount": 1, "currency": "XYZ"}, "ISO 4217"),
    ],
)
def test_bad_data_is_a_validation_error_naming_the_problem(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        structure(data, Money)


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="Nope"):
        structure(
            {"type": "Nope", "id": "e", "occurred_at": "2026-01-01T00:00:00+00:00"}, DomainEvent
        )


def test_public_api_is_exported() -> None:
    for name in membership_core.__all__:
        assert hasattr(membership_core, name), name
