"""Offers: checkout page, service agreement, upsell, link, preview, search, by product."""

from __future__ import annotations

import hashlib

import pytest

from membership_core import Money, ValidationError
from membership_core.domain.offers import (
    CheckoutPage,
    ContactField,
    FieldType,
    OfferStatus,
    ServiceAgreement,
    UpsellKind,
)
from membership_core.domain.pricing import OneTime

from .conftest import PortalFactory
from .helpers import build_course

TERMS = ServiceAgreement("Terms and Conditions", "  You agree to be excellent.\n")
PAGE = CheckoutPage(
    headline="Learn Python",
    copy="Everything you need.",
    video_url="https://video.example.com/intro",
    fields=(
        ContactField("company", "Company", FieldType.TEXT),
        ContactField("phone", "Phone", FieldType.PHONE, required=True),
        ContactField("level", "Level", FieldType.SELECT, True, ("beginner", "expert")),
        ContactField("newsletter", "Newsletter", FieldType.CHECKBOX),
        ContactField("adult", "I am over 16", FieldType.CHECKBOX, required=True),
        ContactField("billing", "Billing email", FieldType.EMAIL),
    ),
    agreement=TERMS,
)
GOOD = {"phone": "+49 30 1234567", "level": "expert", "adult": True}


def test_checkout_records_answers_and_the_exact_terms_accepted(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    offer = portal.offers.set_checkout_page(course.offer.id, PAGE)
    assert offer.checkout_page == PAGE
    purchase = portal.checkout.purchase(
        offer.id, email="a@example.com", contact=GOOD, accept_terms=True
    )
    expected = hashlib.sha256(f"{TERMS.title}\n\n{TERMS.text}".encode()).hexdigest()
    assert purchase.terms_hash == f"sha256:{expected}"
    assert purchase.terms_accepted_at == portal.clock.now()
    assert purchase.contact == {
        "phone": "+49 30 1234567",
        "level": "expert",
        "newsletter": "false",
        "adult": "true",
    }
    # later edits to the terms never rewrite what this buyer accepted
    portal.offers.set_checkout_page(
        offer.id, CheckoutPage(agreement=ServiceAgreement("Terms", "New text"))
    )
    assert portal.checkout.get(purchase.id).terms_hash == purchase.terms_hash


@pytest.mark.parametrize(
    ("contact", "accept", "field"),
    [
        (GOOD, False, "accept_terms"),
        ({**GOOD, "phone": None}, True, "contact.phone"),
        ({**GOOD, "phone": "call me"}, True, "contact.phone"),
        ({**GOOD, "level": "guru"}, True, "contact.level"),
        ({**GOOD, "adult": False}, True, "contact.adult"),
        ({**GOOD, "adult": "yes"}, True, "contact.adult"),
        ({**GOOD, "billing": "not-an-email"}, True, "contact.billing"),
        ({**GOOD, "shoe_size": "42"}, True, "contact.shoe_size"),
    ],
)
def test_checkout_refuses_bad_answers_and_writes_nothing(
    open_portal: PortalFactory, contact: dict[str, object], accept: bool, field: str
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    portal.offers.set_checkout_page(course.offer.id, PAGE)
    with pytest.raises(ValidationError) as info:
        portal.checkout.purchase(
            course.offer.id,
            email="a@example.com",
            contact=contact,
            accept_terms=accept,  # type: ignore[arg-type]
        )
    assert info.value.field == field
    assert portal.members.list() == []


@pytest.mark.parametrize(
    ("page", "field"),
    [
        (CheckoutPage(video_url="ftp://x"), "page.video_url"),
        (
            CheckoutPage(fields=(ContactField("Bad Name", "x", FieldType.TEXT),)),
            "page.fields[0].name",
        ),
        (
            CheckoutPage(
                fields=(
                    ContactField("a", "A", FieldType.TEXT),
                    ContactField("a", "B", FieldType.TEXT),
                )
            ),
            "page.fields[1].name",
        ),
        (
            CheckoutPage(fields=(ContactField("email", "E", FieldType.EMAIL),)),
            "page.fields[0].name",
        ),
        (
            CheckoutPage(fields=(ContactField("s", "S", FieldType.SELECT),)),
            "page.fields[0].options",
        ),
        (
            CheckoutPage(fields=(ContactField("t", "T", FieldType.TEXT, options=("x",)),)),
            "page.fields[0].options",
        ),
        (CheckoutPage(fields=(ContactField("t", "", FieldType.TEXT),)), "page.fields[0].label"),
        (CheckoutPage(agreement=ServiceAgreement("Terms", "   ")), "page.agreement.text"),
        ("not a page", "page"),
    ],
)
def test_checkout_page_is_validated(open_portal: PortalFactory, page: object, field: str) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    with pytest.raises(ValidationError) as info:
        portal.offers.set_checkout_page(course.offer.id, page)  # type: ignore[arg-type]
    assert info.value.field == field
    assert portal.offers.get(course.offer.id).checkout_page == CheckoutPage()


def test_upsell_link_and_preview(open_portal: PortalFactory) -> None:
    portal = open_portal(platform_url="https://learn.example.com")
    main = build_course(portal, lessons=3, title="Main")
    extra = build_course(portal, lessons=1, title="Extra")
    hidden = portal.catalog.add_lesson(
        main.product.id, main.lessons[0].category_id, "Draft lesson", published=False
    )
    offer = portal.offers.set_upsell(main.offer.id, extra.offer.id, kind="one_click")
    assert offer.upsell is not None
    assert offer.upsell.kind is UpsellKind.ONE_CLICK
    with pytest.raises(ValidationError) as info:
        portal.offers.set_upsell(main.offer.id, main.offer.id)
    assert info.value.field == "upsell_offer_id"

    link = portal.offers.link(main.offer.id)
    assert link == f"https://learn.example.com/offers/{main.offer.id}"
    preview = portal.offers.preview(main.offer.id)
    assert preview.link == link
    assert preview.upsell == portal.offers.get(extra.offer.id)
    (product,) = preview.products
    assert product.product.id == main.product.id
    assert [lesson.id for lesson in product.lessons] == [x.id for x in main.lessons]
    assert hidden.id not in {lesson.id for lesson in product.lessons}
    assert portal.offers.set_upsell(main.offer.id, None).upsell is None


def test_search_and_offers_by_product(open_portal: PortalFactory) -> None:
    portal = open_portal()
    a = build_course(portal, lessons=1, title="Alpha")
    b = build_course(portal, lessons=1, title="Beta")
    bundle = portal.offers.create_offer("Alpha + Beta bundle", [a.product.id, b.product.id])
    paid = portal.offers.create_offer(
        "Alpha premium",
        [a.product.id],
        plan=OneTime(Money.of("99", "EUR")),
        image_url="https://cdn.example.com/a.png",
    )
    assert paid.image_url == "https://cdn.example.com/a.png"
    assert [o.title for o in portal.offers.search("alpha")] == [
        "Alpha (free)",
        "Alpha + Beta bundle",
        "Alpha premium",
    ]
    assert [o.id for o in portal.offers.search("", status=OfferStatus.PUBLISHED)] == [
        a.offer.id,
        b.offer.id,
    ]
    assert [o.id for o in portal.offers.for_product(b.product.id)] == [
        bundle.id,
        b.offer.id,
    ]
    assert {o.id for o in portal.offers.for_product(a.product.id)} == {
        a.offer.id,
        bundle.id,
        paid.id,
    }
    renamed = portal.offers.update_offer(paid.id, title="Alpha gold", image_url=None)
    assert (renamed.title, renamed.image_url, renamed.price) == ("Alpha gold", None, paid.price)
    with pytest.raises(ValidationError) as info:
        portal.offers.search(sort="price")
    assert info.value.field == "sort"
