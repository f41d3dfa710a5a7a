"""Several portals in one database: nothing of one is visible from another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from membership_core import NotFound, Portal
from membership_core.adapters.sql import SqlStorage
from membership_core.testing import make_test_portal

from .helpers import build_course


@pytest.fixture(params=["sqlite", "postgresql"])
def two_portals(request: pytest.FixtureRequest) -> Any:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    storage = SqlStorage(url)
    a = make_test_portal(storage, tenant="acme")
    b = make_test_portal(storage, tenant="globex")
    yield a, b
    storage.close()


CROSS_CALLS: list[tuple[str, Callable[[Portal, Any], object]]] = [
    ("get product", lambda b, w: b.catalog.get_product(w["product"])),
    ("update product", lambda b, w: b.catalog.update_product(w["product"], title="Stolen")),
    ("publish product", lambda b, w: b.catalog.unpublish_product(w["product"])),
    ("add category", lambda b, w: b.catalog.add_category(w["product"], "X")),
    ("add lesson", lambda b, w: b.catalog.add_lesson(w["product"], w["category"], "X")),
    ("get lesson", lambda b, w: b.catalog.get_lesson(w["lesson"])),
    ("move lesson", lambda b, w: b.catalog.move_lesson(w["lesson"], w["category"], 0)),
    ("structure", lambda b, w: b.catalog.structure(w["product"])),
    ("get offer", lambda b, w: b.offers.get(w["offer"])),
    ("publish offer", lambda b, w: b.offers.publish(w["offer"])),
    ("buy offer", lambda b, w: b.checkout.purchase(w["offer"], email="x@example.com")),
    ("get purchase", lambda b, w: b.checkout.get(w["purchase"])),
    ("confirm purchase", lambda b, w: b.checkout.confirm_payment(w["purchase"])),
    ("get member", lambda b, w: b.members.get(w["member"])),
    ("find member", lambda b, w: b.members.find_by_email("ada@example.com")),
    ("can view", lambda b, w: b.access.can_view(w["member"], w["lesson"])),
    ("outline", lambda b, w: b.access.outline(w["member"], w["product"])),
    ("complete", lambda b, w: b.progress.complete_lesson(w["member"], w["lesson"])),
    ("progress", lambda b, w: b.progress.progress(w["member"], w["product"])),
    ("certificate", lambda b, w: b.certificates.get(w["certificate"])),
    ("issue certificate", lambda b, w: b.certificates.issue(w["member"], w["product"])),
    ("resend mail", lambda b, w: b.mail.resend(w["message"])),
]


def test_no_portal_reaches_another_portals_records(two_portals: Any) -> None:
    a, b = two_portals
    a.settings.update_site(title="Acme")
    course = build_course(a, lessons=1)
    purchase = a.checkout.purchase(course.offer.id, email="ada@example.com")
    a.progress.complete_lesson(purchase.member_id, course.lessons[0].id)
    (certificate,) = a.certificates.for_member(purchase.member_id)
    (message,) = a.mail.outbox()
    known = {
        "product": course.product.id,
        "category": course.lessons[0].category_id,
        "lesson": course.lessons[0].id,
        "offer": course.offer.id,
        "purchase": purchase.id,
        "member": purchase.member_id,
        "certificate": certificate.id,
        "message": message.id,
    }
    reached = []
    for name, call in CROSS_CALLS:
        try:
            call(b, known)
        except NotFound:
            continue
        reached.append(name)
    assert reached == []

    # listings and public lookups are empty too
    assert b.catalog.search_products("") == []
    assert b.members.list() == []
    assert b.certificates.for_member(purchase.member_id) == []
    assert b.certificates.verify(certificate.serial).certificate is None
    assert b.mail.outbox() == []
    assert b.settings.site().title != "Acme"

    # and nothing of portal A changed
    assert a.catalog.get_product(course.product.id).title == course.product.title
    assert a.progress.is_completed(purchase.member_id, course.product.id)
    assert len(a.certificates.for_member(purchase.member_id)) == 1
    assert a.settings.site().title == "Acme"


def test_tenant_names_are_validated() -> None:
    from membership_core import ValidationError

    for bad in ["", "Acme", "a b", "-x", "x" * 64, 3]:
        with pytest.raises(ValidationError) as info:
            Portal.open("memory://", tenant=bad, load_entrypoints=False)  # type: ignore[arg-type]
        assert info.value.field == "tenant"
