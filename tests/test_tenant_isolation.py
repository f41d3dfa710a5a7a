"""Tenant isolation: every service call is scoped to its portal (issue 5).

Two portals share one database (SQLite, PostgreSQL): ``acme`` (A) holds a rich
world, ``globex`` (B) a small one of its own. From B, every public service
method that takes an identifier is called with A's identifiers (and with A's
mixed with B's own): each attempt fails with ``NotFound``, or with the
behaviour its docstring promises for a record it does not know (an
``InvalidToken`` for a token, an empty listing, ``None``). Methods without an
identifier (listings, searches, scheduled work) show B nothing of A. Every
row of A is the same before and after, and B changes only by what it wrote
itself. A's tokens, codes and webhooks still work on A afterwards. A twin of A
whose records have A's very ids makes every call on its own records, and A
stays as it was.

A meta-test introspects the portal's services so that a new method taking an
identifier cannot be added without an entry in :data:`CROSS_CALLS`.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from membership_core import (
    AccessWindow,
    BillingPeriod,
    Category,
    Certificate,
    CertificateStatus,
    Conditions,
    Conflict,
    Coupon,
    GrantOffer,
    Interval,
    InvalidToken,
    IssueCertificate,
    Lesson,
    MembershipError,
    Money,
    NotFound,
    OneTime,
    PaymentPlan,
    PercentOff,
    Product,
    PurchaseStatus,
    SendEmail,
    SequentialIds,
    Subscription,
    ValidationError,
)
from membership_core.adapters.sql import SqlStorage
from membership_core.adapters.sql.schema import tables
from membership_core.domain.assessments import Question, QuestionKind
from membership_core.domain.drip import (
    AfterDelay,
    DripSettings,
    FromAccessGrant,
    LessonAvailability,
)
from membership_core.domain.email_settings import AutomatedEmail
from membership_core.domain.offers import CheckoutPage
from membership_core.errors import TooManyAttempts
from membership_core.ports.payments import PaymentResult, PaymentStatus
from membership_core.ports.storage import COLLECTIONS
from membership_core.services.billing import BillingRun
from membership_core.services.mail import member_values
from membership_core.services.settings import EXPORT_FORMAT
from membership_core.testing import TestPortal, make_test_portal
from membership_core.testing.gateway import Pending, WebhookDelivery

from .helpers import Snapshot, build_course, snapshot

PASSWORD = "correct horse battery"
QUIZ_QUESTION = Question("q1", QuestionKind.TRUE_FALSE, "Is Acme the best?", ("true",))
NEW_PASSWORD = "staple orbit lantern"
MONTHLY = BillingPeriod(Interval.MONTH)

# -- the two worlds -------------------------------------------------------------------


@dataclass(frozen=True)
class Acme:
    """Portal A's records, as its admins and members know them."""

    product: str  # published, free offer; three lessons in two modules
    category: str  # Module 1 of ``product``
    category2: str  # Module 2 of ``product``
    subcategory: str  # an empty sub-category of Module 1
    lesson: str  # the first lesson of ``product``
    draft_product: str
    drip_product: str
    drip_lesson: str  # opens 7 days after the grant
    free_offer: str
    one_time_offer: str  # upsells ``subscription_offer``
    subscription_offer: str
    plan_offer: str
    draft_offer: str
    coupon_code: str
    ada: str  # bought the free offer, completed it, has a password
    ada_email: str
    ada_version: int
    bob: str  # bought the drip course (its schedule: ``bob_schedule``) and the upsell
    bob_email: str
    cy_email: str
    dee_email: str
    fay: str  # invited, granted the course for ten days
    free_purchase: str
    one_time_purchase: str  # bob's, paid with the coupon, partly refunded
    order_key: str  # its idempotency key
    subscription_purchase: str  # bob's one-click upsell: a running billing
    plan_purchase: str  # cy's payment plan
    pending_purchase: str  # dee's, waiting for its webhook
    pending_webhook: WebhookDelivery  # that webhook: signed, not delivered yet
    certificate: Certificate
    certificate_code: str  # its verification code
    public_key: dict[str, str]  # A's signing key (public part)
    message: str  # a sent email
    message_key: str
    reset_token: str
    magic_token: str
    magic_code: str  # of a second magic link
    #: The drip course's records and A's own schedule of it for bob, as A answers.
    drip_course: tuple[Product, tuple[Category, ...], tuple[Lesson, ...]]
    bob_schedule: Mapping[str, LessonAvailability] | None
    template: str  # A's welcome template, selected for the welcome email
    certificate_template: str  # A's certificate template, used by the drip course
    quiz: str  # the assessment of ``lesson``, passed by ada
    attempt: str  # ada's passed attempt
    rule: str  # A's own automation rule (besides its default one), sending ``template``
    #: Every generated id of A's rows (see :func:`_generated_ids`).
    ids: frozenset[str] = field(default=frozenset())


@dataclass(frozen=True)
class Globex:
    """Portal B's own records, for calls mixing them with A's."""

    product: str
    category: str
    lesson: str
    offer: str  # free
    paid_offer: str
    member: str
    purchase: str  # of ``offer``
    paid_purchase: str  # of ``paid_offer``
    rule: str  # B's default automation rule


class GlobexIds(SequentialIds):
    """B's ids (``prod_g00001``): none of them is also the id of a record of A.

    Both test portals count their ids from 1, so B's first product would have
    A's first product's id, and a lookup of A's id from B would find B's own
    record. The twin test below covers the portals whose ids do coincide.
    """

    def new(self, prefix: str) -> str:
        return super().new(prefix).replace("_0", "_g", 1)


def _build_acme(a: TestPortal, name: str = "acme") -> Acme:
    a.settings.update_site(title="Acme Academy", support_email="help@acme.example")
    a.settings.update_sender(sender_email="hello@acme.example")
    a.settings.update_domain(subdomain=name)  # names are unique across portals
    a.use_domain(f"learn.{name}.com")
    template = a.templates.create(
        "Acme welcome",
        kind="welcome",
        subject="Welcome to {{ portal.title }}",
        html='<img src="https://acme.example/logo.png"> <a href="{{ login_url }}">Log in</a>',
    )
    a.settings.update_email("welcome", enabled=True, template_id=template.id)
    certificate_template = a.certificates.create_template(
        "Acme certificate",
        html="<h1>Acme: {{ certificate.recipient_name }}</h1>{{ certificate.qr_svg }}",
    )
    course = build_course(a, lessons=3, title="Acme Python")
    first, _, third = course.lessons
    subcategory = a.catalog.add_category(course.product.id, "Appendix", parent_id=first.category_id)
    draft = a.catalog.create_product("Acme drafts")
    a.catalog.add_category(draft.id, "Ideas")

    drip = a.catalog.create_product("Acme drip")
    drip_module = a.catalog.add_category(drip.id, "Weeks")
    a.catalog.add_lesson(drip.id, drip_module.id, "Week 1")
    week2 = a.catalog.add_lesson(drip.id, drip_module.id, "Week 2")
    a.drip.configure(drip.id, DripSettings(FromAccessGrant()))
    a.drip.set_rules(drip.id, week2.id, [AfterDelay(days=7)])
    a.catalog.publish_product(drip.id)
    a.certificates.use_template(drip.id, certificate_template.id)

    def offer(title: str, products: list[str], plan: Any = None) -> str:
        made = a.offers.create_offer(title, products, plan=plan)
        return a.offers.publish(made.id).id

    one_time = offer("Acme drip", [drip.id], OneTime(Money.of("40", "EUR")))
    subscription = offer(
        "Acme club", [course.product.id], Subscription(Money.of("9", "EUR"), MONTHLY)
    )
    plan = offer(
        "Acme bundle",
        [drip.id, course.product.id],
        PaymentPlan(Money.of("90", "EUR"), 3, MONTHLY),
    )
    draft_offer = a.offers.create_offer("Acme later", [course.product.id]).id
    a.offers.set_upsell(one_time, subscription, kind="one_click")
    a.offers.create_coupon(Coupon("ACME10", PercentOff(10), offer_ids=[one_time]))

    # ada: the free course, completed (a certificate), a password, links and a reset
    free = a.checkout.purchase(course.offer.id, email="ada@acme.example", first_name="Ada")
    quiz = a.assessments.create(course.lessons[0].id, [QUIZ_QUESTION], pass_percent=100)
    attempt = a.assessments.start_attempt(free.member_id, quiz.id)
    assert a.assessments.submit(free.member_id, attempt.attempt_id, {"q1": True}).passed
    for lesson in course.lessons:
        a.progress.complete_lesson(free.member_id, lesson.id)
    (certificate,) = a.certificates.for_member(free.member_id)
    ada = a.accounts.set_password(free.member_id, PASSWORD, PASSWORD)
    magic = a.accounts.create_magic_link(ada.id)
    magic2 = a.accounts.create_magic_link(ada.id)

    # bob: the drip course with the coupon, the one-click upsell, a partial refund
    bought = a.checkout.purchase(
        one_time, email="bob@acme.example", idempotency_key="acme-order-1", coupon_code="acme10"
    )
    upsold = a.checkout.accept_upsell(bought.id, subscription)
    a.payments.refund(bought.id, Money.of("5", "EUR"), reason="goodwill")
    a.progress.record_visit(bought.member_id, drip.id)
    a.progress.record_video_progress(bought.member_id, week2.id, 40)

    # cy: a payment plan; erin: paid by webhook; dee: still waiting for hers
    plan_purchase = a.checkout.purchase(plan, email="cy@acme.example")
    a.gateway.script(Pending())
    erin = a.checkout.purchase(one_time, email="erin@acme.example")
    assert erin.gateway_reference is not None
    a.gateway.settle(erin.gateway_reference)
    a.gateway.deliver_webhooks(a)
    a.gateway.script(Pending())
    pending = a.checkout.purchase(one_time, email="dee@acme.example")
    assert pending.gateway_reference is not None
    a.gateway.settle(pending.gateway_reference)
    (pending_webhook,) = a.gateway.take_webhooks()

    # fay: invited, given the course for ten days by an admin
    fay = a.members.invite("fay@acme.example", first_name="Fay")
    a.access.grant(
        fay.id, course.product.id, reason="press", ends_at=a.clock.now() + timedelta(days=10)
    )
    a.tick()  # everything dispatched and sent; the scheduled work has its marks

    a.mail.send(fay.id, "welcome")  # with a sign-in link minted for fay

    # ada's reset email: answered by the next tick; its first delivery fails, so it
    # waits in A's outbox for a retry (which no tick of B may make)
    a.accounts.request_password_reset("ada@acme.example")
    a.mailer.fail_next()
    assert a.accounts.send_requested() == 1
    (queued,) = a.mail.outbox(status="queued")
    assert queued.kind == "password_reset"
    found = re.search(r"\?token=(\S+)", queued.message.text)
    assert found, queued.message.text
    # a failed sign-in counted, and bob's sign-in request waiting for A's next tick
    with contextlib.suppress(InvalidToken):
        a.accounts.login("ada@acme.example", NEW_PASSWORD)
    a.accounts.request_magic_link("bob@acme.example")

    # A rule of A's own, made last so that it has not run for anything yet.
    rule = a.automations.create(
        "Acme alumni",
        trigger="course_completed",
        conditions=Conditions(product_ids=[course.product.id]),
        actions=[SendEmail(template.id), GrantOffer(one_time)],
    )

    categories, lessons = a.catalog.structure(drip.id)
    drip_course = (a.catalog.get_product(drip.id), tuple(categories), tuple(lessons))
    sent = a.mail.outbox(status="sent")[0]
    assert a.checkout.get(erin.id).status is PurchaseStatus.PAID
    assert a.billing.get(upsold.id).purchase_id == upsold.id
    assert a.billing.get(plan_purchase.id).purchase_id == plan_purchase.id
    assert a.payments.refunds(bought.id)
    return Acme(
        product=course.product.id,
        category=first.category_id,
        category2=third.category_id,
        subcategory=subcategory.id,
        lesson=first.id,
        draft_product=draft.id,
        drip_product=drip.id,
        drip_lesson=week2.id,
        free_offer=course.offer.id,
        one_time_offer=one_time,
        subscription_offer=subscription,
        plan_offer=plan,
        draft_offer=draft_offer,
        coupon_code="ACME10",
        ada=ada.id,
        ada_email=ada.email,
        ada_version=ada.credential_version,
        bob=bought.member_id,
        bob_email="bob@acme.example",
        cy_email="cy@acme.example",
        dee_email="dee@acme.example",
        fay=fay.id,
        free_purchase=free.id,
        one_time_purchase=bought.id,
        order_key="acme-order-1",
        subscription_purchase=upsold.id,
        plan_purchase=plan_purchase.id,
        pending_purchase=pending.id,
        pending_webhook=pending_webhook,
        certificate=certificate,
        certificate_code=a.certificates.verification_code(certificate.id),
        public_key=a.certificates.public_key(),
        message=sent.id,
        message_key=sent.idempotency_key,
        reset_token=found.group(1),
        magic_token=magic.token,
        magic_code=magic2.code,
        drip_course=drip_course,
        bob_schedule=_schedule(a, drip_course, bought.member_id),
        template=template.id,
        certificate_template=certificate_template.id,
        quiz=quiz.id,
        attempt=attempt.attempt_id,
        rule=rule.id,
    )


def _schedule(
    portal: TestPortal,
    course: tuple[Product, tuple[Category, ...], tuple[Lesson, ...]],
    member_id: str,
) -> Mapping[str, LessonAvailability] | None:
    """``drip.availability`` of ``course`` for ``member_id``, in ``portal``'s storage."""
    product, categories, lessons = course
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return portal.drip.availability(
            uow, product, categories, lessons, member_id, portal.clock.now()
        )


def _build_globex(b: TestPortal) -> Globex:
    b.settings.update_site(title="Globex")
    b.settings.update_domain(subdomain="globex")
    course = build_course(b, lessons=1, title="Globex basics")
    paid = b.offers.create_offer("Globex pro", [course.product.id], plan=OneTime(Money(900, "EUR")))
    b.offers.publish(paid.id)
    free = b.checkout.purchase(course.offer.id, email="gus@globex.example")
    bought = b.checkout.purchase(paid.id, email="gus@globex.example")
    return Globex(
        product=course.product.id,
        category=course.lessons[0].category_id,
        lesson=course.lessons[0].id,
        offer=course.offer.id,
        paid_offer=paid.id,
        member=free.member_id,
        purchase=free.id,
        paid_purchase=bought.id,
        rule=b.automations.list()[0].id,
    )


# -- snapshots ------------------------------------------------------------------------

#: Collections whose ids are names (or hashes of them), the same in every portal.
_NAMED_IDS = frozenset(
    {
        "portal_settings",
        "settings_stamps",
        "domain_claims",
        "checkpoints",
        "attempt_counters",
        "portal_keys",
        "certificate_designs",  # named by the hash of their source
    }
)


def _generated_ids(storage: SqlStorage, tenant: str) -> frozenset[str]:
    with storage.engine.connect() as connection:
        return frozenset(
            str(row_id)
            for collection in COLLECTIONS
            if collection.name not in _NAMED_IDS
            for row_id in connection.execute(
                sa.select(tables[collection.name].c.id).where(
                    tables[collection.name].c.tenant == tenant
                )
            ).scalars()
        )


def _changed(before: Snapshot, after: Snapshot) -> list[str]:
    return [name for name in before if before[name] != after[name]]


# -- the attempts ---------------------------------------------------------------------

Call = Callable[[TestPortal, Acme, Globex], object]
Check = Callable[[Any, TestPortal, Acme, Globex], bool]


@dataclass(frozen=True)
class Attempt:
    """One call made from B: it raises ``error``, or (with ``check``) answers so."""

    call: Call
    error: type[MembershipError] = NotFound
    check: Check | None = None
    #: The call legitimately writes B's own records (run after the read-only ones).
    writes: bool = False


def missing(call: Call) -> Attempt:
    """A's record is unknown in B: ``NotFound``."""
    return Attempt(call)


def refused(error: type[MembershipError], call: Call) -> Attempt:
    """B answers as documented for a record it does not know: ``error``."""
    return Attempt(call, error=error)


def answers(check: Check, call: Call, *, writes: bool = False) -> Attempt:
    """B answers as documented for what it does not know (an empty list, ``None``...)."""
    return Attempt(call, check=check, writes=writes)


def _png(size: int) -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (size, size), "#224488").save(out, "PNG")
    return out.getvalue()


def _jws_part(token: str, index: int) -> Any:
    """The JSON of part ``index`` of a compact JWS (0: header, 1: payload)."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _traces(result: object, a: Acme) -> list[str]:
    """A's ids and secrets found in ``result``'s repr."""
    text = repr(result)
    secrets = (
        a.certificate.serial,
        a.certificate_code,
        a.reset_token,
        a.magic_token,
        "Acme Academy",
    )
    return [value for value in (*a.ids, *secrets) if value in text]


#: The ``portal`` value of B's templates.
_PORTAL = {"title": "Globex", "url": "https://globex.example", "logo_url": None}


def _queue(b: TestPortal, a: Acme, g: Globex) -> object:
    """Queue an email in B's unit of work with A's member and idempotency key; not committed."""
    context = {"member": member_values(b.members.get(g.member)), "portal": _PORTAL}
    with b.storage.unit_of_work(b.tenant) as uow:
        return b.mail.queue(
            uow,
            kind="welcome",
            to=a.ada_email,
            context=context,
            idempotency_key=a.message_key,
            member_id=a.ada,
            deliver_now=False,
        )


def _queue_automated(b: TestPortal, a: Acme, g: Globex) -> object:
    """Queue B's welcome (off in B) for B's member under A's key, in B's unit of work."""
    with b.storage.unit_of_work(b.tenant) as uow:
        member = uow.members.get(g.member)
        assert member is not None
        return b.mail.queue_automated(
            uow, AutomatedEmail.WELCOME, member, {}, a.message_key, b.clock.now()
        )


def _same_as_for_nobody(result: object, b: TestPortal, a: Acme, _g: Globex) -> bool:
    """B's schedule of A's member is the one of a member nobody knows, unlike A's own."""
    nobody = _schedule(b, a.drip_course, "mem_nobody")
    return result == nobody and result != a.bob_schedule


def _ignored_webhook(result: Any, b: TestPortal, a: Acme, _g: Globex) -> bool:
    """B stores A's webhook in its own inbox and finds no purchase of its own for it."""
    (stored,) = b.payments.webhook_events()
    return (result.received, result.duplicates, result.applied) == (1, 0, 1) and (
        stored.outcome is not None and stored.outcome.startswith("ignored")
    )


def _new_of_b(result: Any, _b: TestPortal, a: Acme, _g: Globex) -> bool:
    """A record B made for itself, under an id that is none of A's."""
    return result.id not in a.ids


_PAGE = CheckoutPage(headline="Stolen")
_RESULT = PaymentResult(PaymentStatus.SUCCEEDED, Money.of("9", "EUR"))

#: Every public service method taking an identifier, called from B with A's
#: (and with A's mixed with B's own).
CROSS_CALLS: dict[str, list[Attempt]] = {
    # -- access
    "access.can_preview": [missing(lambda b, a, g: b.access.can_preview(a.lesson))],
    "access.can_view": [
        missing(lambda b, a, g: b.access.can_view(a.ada, a.lesson)),
        missing(lambda b, a, g: b.access.can_view(g.member, a.lesson)),
        missing(lambda b, a, g: b.access.can_view(a.ada, g.lesson)),
    ],
    "access.enrollments": [missing(lambda b, a, g: b.access.enrollments(a.bob))],
    "access.grant": [
        missing(lambda b, a, g: b.access.grant(a.ada, a.product, reason="x")),
        missing(lambda b, a, g: b.access.grant(g.member, a.product, reason="x")),
        missing(lambda b, a, g: b.access.grant(a.ada, g.product, reason="x")),
    ],
    "access.outline": [
        missing(lambda b, a, g: b.access.outline(a.ada, a.product)),
        missing(lambda b, a, g: b.access.outline(g.member, a.product)),
        missing(lambda b, a, g: b.access.outline(a.ada, g.product)),
    ],
    "access.revoke": [
        missing(lambda b, a, g: b.access.revoke(a.fay, a.product, reason="x")),
        missing(lambda b, a, g: b.access.revoke(g.member, a.product, reason="x")),
    ],
    # -- accounts: a token, code, password or session of A is unknown in B, and
    # the documented answer to an unknown one is InvalidToken (InvalidCredentials
    # for a login). The request_* methods answer None and store the request for
    # any email alike; B's tick then finds no account for it (accounts.send_requested
    # below answers 0) and neither mints nor sends anything.
    "accounts.check_session": [
        refused(InvalidToken, lambda b, a, g: b.accounts.check_session(a.ada, a.ada_version))
    ],
    "accounts.create_magic_link": [missing(lambda b, a, g: b.accounts.create_magic_link(a.ada))],
    "accounts.inspect": [
        refused(InvalidToken, lambda b, a, g: b.accounts.inspect(a.magic_token)),
        refused(InvalidToken, lambda b, a, g: b.accounts.inspect(a.reset_token)),
    ],
    "accounts.login": [
        refused(InvalidToken, lambda b, a, g: b.accounts.login(a.ada_email, PASSWORD))
    ],
    "accounts.redeem": [refused(InvalidToken, lambda b, a, g: b.accounts.redeem(a.magic_token))],
    "accounts.redeem_code": [
        refused(InvalidToken, lambda b, a, g: b.accounts.redeem_code(a.ada_email, a.magic_code))
    ],
    "accounts.request_magic_link": [
        answers(
            lambda r, b, a, g: r is None,
            lambda b, a, g: b.accounts.request_magic_link(a.ada_email),
        )
    ],
    "accounts.request_password_reset": [
        answers(
            lambda r, b, a, g: r is None,
            lambda b, a, g: b.accounts.request_password_reset(a.ada_email),
        )
    ],
    "accounts.reset_password": [
        refused(
            InvalidToken,
            lambda b, a, g: b.accounts.reset_password(a.reset_token, NEW_PASSWORD, NEW_PASSWORD),
        )
    ],
    "accounts.set_password": [
        missing(lambda b, a, g: b.accounts.set_password(a.ada, NEW_PASSWORD, NEW_PASSWORD))
    ],
    # -- automations: A's rules, and rules naming A's offers, products and templates
    "automations.create": [
        missing(
            lambda b, a, g: b.automations.create(
                "Stolen", trigger="offer_purchased", actions=[GrantOffer(a.subscription_offer)]
            )
        ),
        missing(
            lambda b, a, g: b.automations.create(
                "Stolen", trigger="course_completed", actions=[SendEmail(a.template)]
            )
        ),
        missing(
            lambda b, a, g: b.automations.create(
                "Stolen",
                trigger="course_completed",
                conditions=Conditions(product_ids=[g.product, a.product]),
                actions=[IssueCertificate()],
            )
        ),
        missing(
            lambda b, a, g: b.automations.create(
                "Stolen",
                trigger="offer_purchased",
                conditions=Conditions(offer_ids=[a.free_offer]),
                actions=[GrantOffer(g.offer)],
            )
        ),
    ],
    "automations.delete": [missing(lambda b, a, g: b.automations.delete(a.rule))],
    "automations.disable": [missing(lambda b, a, g: b.automations.disable(a.rule))],
    "automations.enable": [missing(lambda b, a, g: b.automations.enable(a.rule))],
    "automations.get": [missing(lambda b, a, g: b.automations.get(a.rule))],
    "automations.update": [
        missing(lambda b, a, g: b.automations.update(a.rule, name="Stolen")),
        missing(
            lambda b, a, g: b.automations.update(g.rule, actions=[GrantOffer(a.one_time_offer)])
        ),
        missing(
            lambda b, a, g: b.automations.update(
                g.rule, conditions=Conditions(product_ids=[a.product])
            )
        ),
    ],
    # -- billing
    "billing.apply_result": [
        missing(lambda b, a, g: b.billing.apply_result(a.subscription_purchase, 2, _RESULT))
    ],
    "billing.cancel": [
        missing(lambda b, a, g: b.billing.cancel(a.subscription_purchase)),
        missing(lambda b, a, g: b.billing.cancel(a.plan_purchase, at_period_end=False)),
    ],
    "billing.get": [missing(lambda b, a, g: b.billing.get(a.subscription_purchase))],
    "billing.payments": [missing(lambda b, a, g: b.billing.payments(a.plan_purchase))],
    # -- catalog
    "catalog.add_category": [
        missing(lambda b, a, g: b.catalog.add_category(a.product, "X")),
        missing(lambda b, a, g: b.catalog.add_category(g.product, "X", parent_id=a.category)),
    ],
    "catalog.add_lesson": [
        missing(lambda b, a, g: b.catalog.add_lesson(a.product, a.category, "X")),
        missing(lambda b, a, g: b.catalog.add_lesson(g.product, a.category, "X")),
        missing(lambda b, a, g: b.catalog.add_lesson(a.product, g.category, "X")),
    ],
    "catalog.delete_category": [missing(lambda b, a, g: b.catalog.delete_category(a.subcategory))],
    "catalog.delete_lesson": [missing(lambda b, a, g: b.catalog.delete_lesson(a.lesson))],
    "catalog.get_category": [missing(lambda b, a, g: b.catalog.get_category(a.category))],
    "catalog.get_lesson": [missing(lambda b, a, g: b.catalog.get_lesson(a.lesson))],
    "catalog.get_product": [missing(lambda b, a, g: b.catalog.get_product(a.product))],
    "catalog.move_category": [
        missing(lambda b, a, g: b.catalog.move_category(a.category2, position=0)),
        missing(lambda b, a, g: b.catalog.move_category(g.category, parent_id=a.category)),
    ],
    "catalog.move_lesson": [
        missing(lambda b, a, g: b.catalog.move_lesson(a.lesson, a.category2, 0)),
        missing(lambda b, a, g: b.catalog.move_lesson(g.lesson, a.category, 0)),
        missing(lambda b, a, g: b.catalog.move_lesson(a.lesson, g.category, 0)),
    ],
    "catalog.publish_product": [
        missing(lambda b, a, g: b.catalog.publish_product(a.draft_product))
    ],
    "catalog.reorder_categories": [
        missing(lambda b, a, g: b.catalog.reorder_categories(a.product, [a.category2, a.category])),
        # B's own product: the list must name exactly B's categories of that level,
        # and A's is none of them (a ValidationError, as for any stranger id).
        refused(
            ValidationError,
            lambda b, a, g: b.catalog.reorder_categories(g.product, [a.category, g.category]),
        ),
    ],
    "catalog.structure": [missing(lambda b, a, g: b.catalog.structure(a.product))],
    "catalog.unpublish_product": [missing(lambda b, a, g: b.catalog.unpublish_product(a.product))],
    "catalog.update_category": [
        missing(lambda b, a, g: b.catalog.update_category(a.category, title="Stolen"))
    ],
    "catalog.update_lesson": [
        missing(lambda b, a, g: b.catalog.update_lesson(a.lesson, title="Stolen"))
    ],
    "catalog.update_product": [
        missing(lambda b, a, g: b.catalog.update_product(a.product, title="Stolen"))
    ],
    # -- certificates
    "certificates.for_member": [
        # A listing: B holds no certificate of A's member.
        answers(lambda r, b, a, g: r == [], lambda b, a, g: b.certificates.for_member(a.ada))
    ],
    "certificates.delete_template": [
        missing(lambda b, a, g: b.certificates.delete_template(a.certificate_template))
    ],
    "certificates.get": [missing(lambda b, a, g: b.certificates.get(a.certificate.id))],
    "certificates.get_template": [
        missing(lambda b, a, g: b.certificates.get_template(a.certificate_template))
    ],
    "certificates.issue": [
        missing(lambda b, a, g: b.certificates.issue(a.ada, a.product)),
        missing(lambda b, a, g: b.certificates.issue(g.member, a.product)),
    ],
    "certificates.render_html": [
        missing(lambda b, a, g: b.certificates.render_html(a.certificate.id))
    ],
    "certificates.render_pdf": [
        missing(lambda b, a, g: b.certificates.render_pdf(a.certificate.id))
    ],
    "certificates.render": [
        missing(lambda b, a, g: b.certificates.render(a.certificate.id, "pdf"))
    ],
    "certificates.open_badge": [
        missing(lambda b, a, g: b.certificates.open_badge(a.certificate.id))
    ],
    "certificates.preview_template": [
        missing(lambda b, a, g: b.certificates.preview_template(a.certificate_template))
    ],
    "certificates.reissue": [
        missing(lambda b, a, g: b.certificates.reissue(a.certificate.id, reason="x"))
    ],
    "certificates.revoke": [
        missing(lambda b, a, g: b.certificates.revoke(a.certificate.id, reason="x"))
    ],
    "certificates.update_template": [
        missing(lambda b, a, g: b.certificates.update_template(a.certificate_template, name="x"))
    ],
    "certificates.use_template": [
        missing(lambda b, a, g: b.certificates.use_template(a.drip_product, None)),
        missing(lambda b, a, g: b.certificates.use_template(g.product, a.certificate_template)),
    ],
    "certificates.verification_code": [
        missing(lambda b, a, g: b.certificates.verification_code(a.certificate.id))
    ],
    "certificates.verification_url": [
        missing(lambda b, a, g: b.certificates.verification_url(a.certificate.id))
    ],
    "certificates.verify": [
        # The public check: an unknown serial or code is UNKNOWN, with no facts.
        answers(
            lambda r, b, a, g: r.status is CertificateStatus.UNKNOWN and r.facts is None,
            lambda b, a, g: b.certificates.verify(a.certificate.serial),
        ),
        answers(
            lambda r, b, a, g: r.status is CertificateStatus.UNKNOWN and r.facts is None,
            lambda b, a, g: b.certificates.verify(a.certificate_code),
        ),
    ],
    # -- checkout
    "checkout.accept_upsell": [
        missing(
            lambda b, a, g: b.checkout.accept_upsell(a.one_time_purchase, a.subscription_offer)
        ),
        # B's own paid purchase: A's offer is not one of its upsells.
        refused(
            ValidationError,
            lambda b, a, g: b.checkout.accept_upsell(g.paid_purchase, a.subscription_offer),
        ),
    ],
    "checkout.confirm_payment": [
        missing(lambda b, a, g: b.checkout.confirm_payment(a.pending_purchase))
    ],
    "checkout.decline_upsell": [
        missing(
            lambda b, a, g: b.checkout.decline_upsell(a.one_time_purchase, a.subscription_offer)
        ),
        refused(
            ValidationError,
            lambda b, a, g: b.checkout.decline_upsell(g.paid_purchase, a.subscription_offer),
        ),
    ],
    "checkout.get": [missing(lambda b, a, g: b.checkout.get(a.one_time_purchase))],
    "checkout.purchase": [
        missing(lambda b, a, g: b.checkout.purchase(a.free_offer, email="x@globex.example")),
        missing(
            lambda b, a, g: b.checkout.purchase(
                a.one_time_offer, email=a.bob_email, idempotency_key=a.order_key
            )
        ),
        # A's coupon code is not a coupon of B (the documented ValidationError).
        refused(
            ValidationError,
            lambda b, a, g: b.checkout.purchase(
                g.paid_offer, email="x@globex.example", coupon_code=a.coupon_code
            ),
        ),
        # A's buyer and idempotency key at B's own offer: a new member and a new
        # purchase of B, neither A's purchase returned nor a Conflict on the key.
        answers(
            lambda r, b, a, g: r.id not in a.ids and r.member_id not in a.ids,
            lambda b, a, g: b.checkout.purchase(
                g.offer, email=a.ada_email, idempotency_key=a.order_key
            ),
            writes=True,
        ),
    ],
    "checkout.upsell_for": [missing(lambda b, a, g: b.checkout.upsell_for(a.one_time_purchase))],
    # -- drip
    "drip.availability": [
        # It evaluates the course the caller passes in the caller's unit of work:
        # in B's, nothing of A's member (grants, completions, opened lessons) is read.
        answers(_same_as_for_nobody, lambda b, a, g: _schedule(b, a.drip_course, a.bob))
    ],
    "drip.configure": [missing(lambda b, a, g: b.drip.configure(a.drip_product, None))],
    "drip.preview_rule_change": [
        missing(lambda b, a, g: b.drip.preview_rule_change(a.drip_product, a.drip_lesson, [])),
        missing(lambda b, a, g: b.drip.preview_rule_change(g.product, a.category, [])),
    ],
    "drip.schedule": [
        missing(lambda b, a, g: b.drip.schedule(a.bob, a.drip_product)),
        missing(lambda b, a, g: b.drip.schedule(g.member, a.drip_product)),
        missing(lambda b, a, g: b.drip.schedule(a.bob, g.product)),
    ],
    "drip.set_rules": [
        missing(lambda b, a, g: b.drip.set_rules(a.drip_product, a.drip_lesson, [])),
        missing(lambda b, a, g: b.drip.set_rules(g.product, a.lesson, [AfterDelay(days=1)])),
    ],
    # -- mail
    "mail.queue": [
        # It writes into the caller's unit of work (left uncommitted here): A's
        # idempotency key is unknown there, so a new message is made, not None.
        answers(
            lambda r, b, a, g: r is not None and r.id not in a.ids, lambda b, a, g: _queue(b, a, g)
        )
    ],
    "mail.queue_automated": [
        # The welcome email is off in B, whatever A chose: nothing is queued.
        answers(lambda r, b, a, g: r is None, lambda b, a, g: _queue_automated(b, a, g))
    ],
    "mail.send_automated": [
        missing(lambda b, a, g: b.mail.send_automated("new_comment", a.ada)),
    ],
    "mail.resend": [missing(lambda b, a, g: b.mail.resend(a.message))],
    # -- assessments
    "assessments.create": [
        missing(lambda b, a, g: b.assessments.create(a.lesson, [QUIZ_QUESTION])),
    ],
    "assessments.get": [missing(lambda b, a, g: b.assessments.get(a.quiz))],
    "assessments.for_lesson": [missing(lambda b, a, g: b.assessments.for_lesson(a.lesson))],
    "assessments.update": [
        missing(lambda b, a, g: b.assessments.update(a.quiz, pass_percent=1)),
    ],
    "assessments.delete": [missing(lambda b, a, g: b.assessments.delete(a.quiz))],
    "assessments.allowance": [
        missing(lambda b, a, g: b.assessments.allowance(a.ada, a.quiz)),
        missing(lambda b, a, g: b.assessments.allowance(g.member, a.quiz)),
    ],
    "assessments.start_attempt": [
        missing(lambda b, a, g: b.assessments.start_attempt(a.ada, a.quiz)),
        missing(lambda b, a, g: b.assessments.start_attempt(g.member, a.quiz)),
    ],
    "assessments.submit": [
        missing(lambda b, a, g: b.assessments.submit(a.ada, a.attempt, {"q1": True})),
        missing(lambda b, a, g: b.assessments.submit(g.member, a.attempt, {"q1": True})),
    ],
    "assessments.attempts": [
        missing(lambda b, a, g: b.assessments.attempts(a.ada, a.quiz)),
        missing(lambda b, a, g: b.assessments.attempts(g.member, a.quiz)),
    ],
    "assessments.report": [missing(lambda b, a, g: b.assessments.report(a.quiz))],
    "assessments.best_score": [
        missing(lambda b, a, g: b.assessments.best_score(g.member, a.quiz)),
    ],
    "templates.get": [missing(lambda b, a, g: b.templates.get(a.template))],
    "templates.preview": [missing(lambda b, a, g: b.templates.preview(a.template))],
    "templates.update": [missing(lambda b, a, g: b.templates.update(a.template, name="Taken"))],
    "templates.delete": [missing(lambda b, a, g: b.templates.delete(a.template))],
    "templates.create": [
        # A's template name is free in B: B gets a template of its own.
        answers(
            lambda r, b, a, g: r.name == "Acme welcome" and r.id not in a.ids,
            lambda b, a, g: b.templates.create(
                "Acme welcome", kind="welcome", subject="Hi", html="<p>Hi</p>"
            ),
            writes=True,
        )
    ],
    "settings.update_email": [
        missing(lambda b, a, g: b.settings.update_email("welcome", template_id=a.template)),
    ],
    # A's names are A's: B can neither take them nor import them.
    "settings.update_domain": [
        refused(Conflict, lambda b, a, g: b.settings.update_domain(subdomain="acme")),
        refused(Conflict, lambda b, a, g: b.settings.update_domain(custom_domain="learn.acme.com")),
    ],
    "settings.import_settings": [
        refused(
            Conflict,
            lambda b, a, g: b.settings.import_settings(
                {
                    "format": EXPORT_FORMAT,
                    "settings": {"domain": {"subdomain": "acme", "custom_domain": None}},
                }
            ),
        ),
    ],
    "mail.send": [
        missing(lambda b, a, g: b.mail.send(a.fay, "welcome")),
        missing(lambda b, a, g: b.mail.send(a.ada, "welcome", idempotency_key=a.message_key)),
    ],
    # -- members
    "members.delete": [missing(lambda b, a, g: b.members.delete(a.fay))],
    "members.find_by_email": [missing(lambda b, a, g: b.members.find_by_email(a.ada_email))],
    "members.get": [missing(lambda b, a, g: b.members.get(a.ada))],
    "members.import_members": [
        # Emails are unique per portal: A's member is not an existing one in B.
        answers(
            lambda r, b, a, g: (
                len(r.created) == 1 and r.existing == () and _new_of_b(r.created[0], b, a, g)
            ),
            lambda b, a, g: b.members.import_members([{"email": a.cy_email}]),
            writes=True,
        )
    ],
    "members.invite": [
        # No Conflict (that would tell B that A has the email): B's own new member.
        answers(_new_of_b, lambda b, a, g: b.members.invite(a.bob_email), writes=True)
    ],
    "members.profile": [missing(lambda b, a, g: b.members.profile(a.ada))],
    "members.reactivate": [missing(lambda b, a, g: b.members.reactivate(a.fay))],
    "members.suspend": [missing(lambda b, a, g: b.members.suspend(a.ada, reason="x"))],
    "members.update": [
        missing(lambda b, a, g: b.members.update(a.ada, first_name="Stolen")),
        # A's email is free in B: B's own member may take it.
        answers(
            lambda r, b, a, g: r.id == g.member and r.email == a.dee_email,
            lambda b, a, g: b.members.update(g.member, email=a.dee_email),
            writes=True,
        ),
    ],
    # -- offers
    "offers.coupon": [missing(lambda b, a, g: b.offers.coupon(a.coupon_code))],
    "offers.create_coupon": [
        missing(
            lambda b, a, g: b.offers.create_coupon(
                Coupon("STOLEN", PercentOff(90), offer_ids=[a.one_time_offer])
            )
        ),
        # Codes are unique per portal: B may use A's code for a coupon of its own.
        answers(
            _new_of_b,
            lambda b, a, g: b.offers.create_coupon(Coupon(a.coupon_code, PercentOff(50))),
            writes=True,
        ),
    ],
    "offers.create_offer": [
        missing(lambda b, a, g: b.offers.create_offer("Stolen", [a.product])),
        missing(lambda b, a, g: b.offers.create_offer("Stolen", [g.product, a.product])),
    ],
    "offers.for_product": [missing(lambda b, a, g: b.offers.for_product(a.product))],
    "offers.get": [missing(lambda b, a, g: b.offers.get(a.one_time_offer))],
    "offers.link": [missing(lambda b, a, g: b.offers.link(a.free_offer))],
    "offers.preview": [missing(lambda b, a, g: b.offers.preview(a.plan_offer))],
    "offers.publish": [missing(lambda b, a, g: b.offers.publish(a.draft_offer))],
    "offers.set_access_window": [
        missing(lambda b, a, g: b.offers.set_access_window(a.free_offer, AccessWindow()))
    ],
    "offers.set_checkout_page": [
        missing(lambda b, a, g: b.offers.set_checkout_page(a.one_time_offer, _PAGE))
    ],
    "offers.set_coupon_active": [
        missing(lambda b, a, g: b.offers.set_coupon_active(a.coupon_code, False))
    ],
    "offers.set_pricing": [
        missing(lambda b, a, g: b.offers.set_pricing(a.one_time_offer, OneTime(Money(1, "EUR"))))
    ],
    "offers.set_upsell": [
        missing(lambda b, a, g: b.offers.set_upsell(a.one_time_offer, None)),
        missing(lambda b, a, g: b.offers.set_upsell(g.offer, a.subscription_offer)),
        missing(lambda b, a, g: b.offers.set_upsell(a.one_time_offer, g.paid_offer)),
    ],
    "offers.unpublish": [missing(lambda b, a, g: b.offers.unpublish(a.free_offer))],
    "offers.update_offer": [
        missing(lambda b, a, g: b.offers.update_offer(a.plan_offer, title="Stolen"))
    ],
    # -- payments
    "payments.handle_webhook": [
        # A's gateway event, delivered to B (same gateway name and secret): B keeps
        # it in its own inbox and ignores it; A's purchase stays pending.
        answers(
            _ignored_webhook,
            lambda b, a, g: b.payments.handle_webhook(
                "test", a.pending_webhook.body, a.pending_webhook.headers
            ),
            writes=True,
        )
    ],
    "payments.refund": [
        missing(lambda b, a, g: b.payments.refund(a.one_time_purchase)),
        missing(lambda b, a, g: b.payments.refund(a.plan_purchase, Money.of("1", "EUR"))),
        # B's own purchase: A's product is not a line it granted.
        refused(
            ValidationError,
            lambda b, a, g: b.payments.refund(g.paid_purchase, product_ids=[a.product]),
        ),
    ],
    "payments.refunds": [missing(lambda b, a, g: b.payments.refunds(a.one_time_purchase))],
    # -- progress
    "progress.activity": [
        missing(lambda b, a, g: b.progress.activity(a.bob, a.drip_product)),
        # B's own member: never active in a product B does not have (None, as documented).
        answers(
            lambda r, b, a, g: r is None,
            lambda b, a, g: b.progress.activity(g.member, a.drip_product),
        ),
    ],
    "progress.complete_lesson": [
        missing(lambda b, a, g: b.progress.complete_lesson(a.ada, a.lesson)),
        missing(lambda b, a, g: b.progress.complete_lesson(g.member, a.lesson)),
        missing(lambda b, a, g: b.progress.complete_lesson(a.ada, g.lesson)),
    ],
    "progress.is_completed": [
        # A yes/no question that names no record it must find: False, not NotFound.
        answers(
            lambda r, b, a, g: r is False, lambda b, a, g: b.progress.is_completed(a.ada, a.product)
        )
    ],
    "progress.progress": [
        missing(lambda b, a, g: b.progress.progress(a.ada, a.product)),
        missing(lambda b, a, g: b.progress.progress(g.member, a.product)),
    ],
    "progress.record_video_progress": [
        missing(lambda b, a, g: b.progress.record_video_progress(a.bob, a.drip_lesson, 90)),
        missing(lambda b, a, g: b.progress.record_video_progress(g.member, a.drip_lesson, 90)),
    ],
    "progress.record_visit": [
        missing(lambda b, a, g: b.progress.record_visit(a.bob, a.drip_product)),
        missing(lambda b, a, g: b.progress.record_visit(g.member, a.drip_product)),
    ],
    "progress.undo_completion": [
        missing(lambda b, a, g: b.progress.undo_completion(a.ada, a.lesson, reason="x")),
        missing(lambda b, a, g: b.progress.undo_completion(g.member, a.lesson, reason="x")),
    ],
}

#: Every other public service method (no identifier): B's listings, searches and
#: scheduled work, which must show and touch nothing of A. Each answer is checked
#: for A's ids and secrets too.
BLIND_CALLS: dict[str, Attempt] = {
    "automations.list": answers(
        lambda r, b, a, g: [rule.id for rule in r] == [g.rule],
        lambda b, a, g: b.automations.list(),
    ),
    "access.notify_expiry": answers(
        lambda r, b, a, g: r == 0, lambda b, a, g: b.access.notify_expiry()
    ),
    "accounts.send_requested": answers(
        lambda r, b, a, g: r == 0, lambda b, a, g: b.accounts.send_requested()
    ),
    "billing.charge_due": answers(
        lambda r, b, a, g: r == BillingRun(), lambda b, a, g: b.billing.charge_due()
    ),
    "catalog.create_product": answers(
        _new_of_b, lambda b, a, g: b.catalog.create_product("Globex extra")
    ),
    "certificates.create_template": answers(
        _new_of_b,
        lambda b, a, g: b.certificates.create_template(
            "Globex certificate", html="<p>{{ certificate.verification_url }}</p>"
        ),
    ),
    "certificates.list_templates": answers(
        # Only the one B made just before (listed above), if any.
        lambda r, b, a, g: [t.name for t in r] in ([], ["Globex certificate"]),
        lambda b, a, g: b.certificates.list_templates(),
    ),
    "certificates.formats": answers(
        lambda r, b, a, g: r == ("html", "pdf"), lambda b, a, g: b.certificates.formats()
    ),
    "certificates.media_type": answers(
        lambda r, b, a, g: r == "application/pdf",
        lambda b, a, g: b.certificates.media_type("pdf"),
    ),
    "certificates.public_key": answers(
        lambda r, b, a, g: r != a.public_key, lambda b, a, g: b.certificates.public_key()
    ),
    "certificates.status_list": answers(
        # B's list: signed with B's key, naming B's site.
        lambda r, b, a, g: (
            _jws_part(r, 0)["jwk"] == b.certificates.public_key() != a.public_key
            and _jws_part(r, 1)["issuer"]["name"] == "Globex"
        ),
        lambda b, a, g: b.certificates.status_list(a.certificate.status_list),
    ),
    "catalog.search_products": answers(
        lambda r, b, a, g: [p.id for p in r] == [g.product],
        lambda b, a, g: b.catalog.search_products("", status="published"),
    ),
    "drip.unlock_due": answers(lambda r, b, a, g: r == 0, lambda b, a, g: b.drip.unlock_due()),
    "mail.deliver_due": answers(
        lambda r, b, a, g: r == (0, 0), lambda b, a, g: b.mail.deliver_due()
    ),
    "mail.deliver_queued": answers(
        lambda r, b, a, g: r == (0, 0), lambda b, a, g: b.mail.deliver_queued()
    ),
    "mail.outbox": answers(
        lambda r, b, a, g: all(m.message.to == "gus@globex.example" for m in r),
        lambda b, a, g: b.mail.outbox(),
    ),
    "mail.render": answers(
        lambda r, b, a, g: "Globex" in r.subject,
        lambda b, a, g: b.mail.render(
            "welcome",
            {"member": member_values(b.members.get(g.member)), "portal": _PORTAL, "login_url": "/"},
        ),
    ),
    "members.list": answers(
        lambda r, b, a, g: [m.id for m in r] == [g.member], lambda b, a, g: b.members.list()
    ),
    "offers.coupons": answers(lambda r, b, a, g: r == [], lambda b, a, g: b.offers.coupons()),
    "offers.search": answers(
        lambda r, b, a, g: {o.id for o in r} == {g.offer, g.paid_offer},
        lambda b, a, g: b.offers.search(""),
    ),
    "payments.apply_pending_webhooks": answers(
        lambda r, b, a, g: r == 0, lambda b, a, g: b.payments.apply_pending_webhooks()
    ),
    "payments.prune_webhooks": answers(
        lambda r, b, a, g: r == 0, lambda b, a, g: b.payments.prune_webhooks()
    ),
    "payments.reconcile": answers(
        lambda r, b, a, g: r == [], lambda b, a, g: b.payments.reconcile()
    ),
    "payments.reconcile_step": answers(
        lambda r, b, a, g: r == [], lambda b, a, g: b.payments.reconcile_step()
    ),
    "payments.webhook_events": answers(
        lambda r, b, a, g: r == [], lambda b, a, g: b.payments.webhook_events()
    ),
    "settings.site": answers(
        lambda r, b, a, g: r.title == "Globex", lambda b, a, g: b.settings.site()
    ),
    "settings.email": answers(
        lambda r, b, a, g: not r.welcome.enabled and r.welcome.template_id is None,
        lambda b, a, g: b.settings.email(),
    ),
    "templates.list": answers(lambda r, b, a, g: r == [], lambda b, a, g: b.templates.list()),
    "settings.update_site": answers(
        lambda r, b, a, g: r.title == "Globex Labs",
        lambda b, a, g: b.settings.update_site(title="Globex Labs"),
    ),
    "settings.get": answers(
        lambda r, b, a, g: (
            r.domain.subdomain == "globex" and r.email.sender_email != "hello@acme.example"
        ),
        lambda b, a, g: b.settings.get(),
    ),
    "settings.base_url": answers(
        lambda r, b, a, g: r == "https://globex.members.example.com",
        lambda b, a, g: b.settings.base_url(),
    ),
    "settings.advanced": answers(
        lambda r, b, a, g: r.snippets() == (), lambda b, a, g: b.settings.advanced()
    ),
    "settings.branding": answers(
        lambda r, b, a, g: r.logo is None, lambda b, a, g: b.settings.branding()
    ),
    "settings.builder": answers(
        lambda r, b, a, g: not r.allow_video_download, lambda b, a, g: b.settings.builder()
    ),
    "settings.domain": answers(
        lambda r, b, a, g: (r.subdomain, r.custom_domain) == ("globex", None),
        lambda b, a, g: b.settings.domain(),
    ),
    "settings.domain_verification": answers(
        lambda r, b, a, g: r is None, lambda b, a, g: b.settings.domain_verification()
    ),
    "settings.verify_domain": refused(ValidationError, lambda b, a, g: b.settings.verify_domain()),
    "settings.app": answers(lambda r, b, a, g: not r.enabled, lambda b, a, g: b.settings.app()),
    "settings.page_snippets": answers(
        lambda r, b, a, g: r == (), lambda b, a, g: b.settings.page_snippets()
    ),
    "settings.web_manifest": answers(
        lambda r, b, a, g: r is None, lambda b, a, g: b.settings.web_manifest()
    ),
    "settings.history": answers(
        lambda r, b, a, g: {change.area for change in r} <= {"site", "domain"},
        lambda b, a, g: b.settings.history(),
    ),
    "settings.export": answers(
        lambda r, b, a, g: r["settings"]["domain"]["custom_domain"] is None,
        lambda b, a, g: b.settings.export(),
    ),
    "settings.update_advanced": answers(
        lambda r, b, a, g: r.custom_css == "h1 {}",
        lambda b, a, g: b.settings.update_advanced(custom_css="h1 {}"),
        writes=True,
    ),
    "settings.update_builder": answers(
        lambda r, b, a, g: r.allow_comments is False,
        lambda b, a, g: b.settings.update_builder(allow_comments=False),
        writes=True,
    ),
    "settings.update_sender": answers(
        lambda r, b, a, g: r.sender_email == "hi@globex.example",
        lambda b, a, g: b.settings.update_sender(sender_email="hi@globex.example"),
        writes=True,
    ),
    "settings.update_branding": answers(
        lambda r, b, a, g: r.logo is not None and r.logo.key.startswith("globex/"),
        lambda b, a, g: b.settings.update_branding(logo=_png(640)),
        writes=True,
    ),
    "settings.update_app": answers(
        lambda r, b, a, g: r.name == "Globex",
        lambda b, a, g: b.settings.update_app(name="Globex"),
        writes=True,
    ),
}


def _outcome(attempt: Attempt, b: TestPortal, a: Acme, g: Globex, *, blind: bool) -> str | None:
    """What went wrong with one attempt from B, or ``None`` when B answered as it should.

    ``blind`` calls name nothing of A, so their answers must not mention any of it.
    """
    try:
        result = attempt.call(b, a, g)
    except Exception as error:
        if attempt.check is None and isinstance(error, attempt.error):
            return None
        return f"raised {error!r}"
    if attempt.check is None:
        return f"returned {result!r:.300} instead of raising {attempt.error.__name__}"
    if not attempt.check(result, b, a, g):
        return f"answered {result!r:.300}"
    traces = _traces(result, a) if blind else []
    return f"showed A's {traces}" if traces else None


@contextlib.contextmanager
def _spy(service: object, method: str) -> Iterator[list[object]]:
    """Record the calls of ``service.method`` in the block (patched on the instance only)."""
    original = getattr(service, method)
    calls: list[object] = []

    def spy(*args: Any, **kwargs: Any) -> object:
        calls.append(args)
        return original(*args, **kwargs)

    setattr(service, method, spy)
    try:
        yield calls
    finally:
        delattr(service, method)


def _problems(
    attempts: Iterator[tuple[str, Attempt]], b: TestPortal, a: Acme, g: Globex, *, blind: bool
) -> list[str]:
    """What went wrong, attempt by attempt; each must call the method it is listed under."""
    problems = []
    for name, attempt in attempts:
        service, method = name.split("[")[0].split(".")
        with _spy(getattr(b, service), method) as calls:
            problem = _outcome(attempt, b, a, g, blind=blind)
        if not calls:
            problem = f"never called {service}.{method}"
        if problem is not None:
            problems.append(f"{name}: {problem}")
    return problems


def _cross(*, writes: bool) -> Iterator[tuple[str, Attempt]]:
    for name, attempts in CROSS_CALLS.items():
        for index, attempt in enumerate(attempts):
            if attempt.writes is writes:
                yield f"{name}[{index}]", attempt


# -- the tests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Portals:
    """A and B on one storage, with their worlds."""

    storage: SqlStorage
    a: TestPortal
    b: TestPortal
    acme: Acme
    globex: Globex


@pytest.fixture(params=["sqlite", "postgresql"])
def portals(request: pytest.FixtureRequest) -> Iterator[Portals]:
    """A (``acme``) and B (``globex``) in one database, each with its world."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    storage = SqlStorage(url)
    try:
        a = make_test_portal(storage, tenant="acme", default_gateway="test")
        b = make_test_portal(storage, tenant="globex", default_gateway="test", ids=GlobexIds())
        acme = _build_acme(a)
        acme = replace(acme, ids=_generated_ids(storage, a.tenant))
        yield Portals(storage, a, b, acme, _build_globex(b))
    finally:
        storage.close()


def test_no_call_from_another_portal_reads_or_changes_a(portals: Portals) -> None:
    a, b = portals.a, portals.b
    acme, globex = portals.acme, portals.globex
    a_before, b_before = snapshot(a, a.tenant), snapshot(b, b.tenant)
    a_sent, a_calls = list(a.mailer.sent), a.gateway.calls
    assert [name for name, rows in a_before.items() if not rows] == [], "A's world misses these"

    # Read-only attempts first: B answers from its own records only, and writes nothing
    # but its own count of failed sign-ins and its own reset and sign-in requests
    # (for A's email, which B does not know).
    problems = _problems(_cross(writes=False), b, acme, globex, blind=False)
    a_changed = _changed(a_before, snapshot(a, a.tenant))
    b_changed = _changed(b_before, snapshot(b, b.tenant))
    # B's listings, searches and scheduled work, then the calls that write B's own
    # records with A's emails, codes and webhook.
    problems += _problems(iter(BLIND_CALLS.items()), b, acme, globex, blind=True)
    problems += _problems(_cross(writes=True), b, acme, globex, blind=False)
    a_changed += _changed(a_before, snapshot(a, a.tenant))
    # B's scheduled work a year on, when all of A's is long due: still none of A's.
    b.clock.advance(days=400)
    b.tick()
    a_changed += _changed(a_before, snapshot(a, a.tenant))

    assert problems == []
    assert b_changed == ["account_requests", "attempt_counters"]
    assert a_changed == []
    assert a.mailer.sent == a_sent
    assert a.gateway.calls == a_calls
    assert a.checkout.get(acme.pending_purchase).status is PurchaseStatus.PENDING


def test_tokens_codes_and_webhooks_of_a_work_on_a_only(portals: Portals) -> None:
    a, b, acme = portals.a, portals.b, portals.acme
    for call in (
        lambda: b.accounts.inspect(acme.magic_token),
        lambda: b.accounts.redeem(acme.magic_token),
        lambda: b.accounts.redeem_code(acme.ada_email, acme.magic_code),
        lambda: b.accounts.inspect(acme.reset_token),
        lambda: b.accounts.reset_password(acme.reset_token, NEW_PASSWORD, NEW_PASSWORD),
        lambda: b.accounts.login(acme.ada_email, PASSWORD),
    ):
        with pytest.raises(InvalidToken):
            call()
    for _ in range(10):  # B throttles failures with A's email, in B only
        with contextlib.suppress(InvalidToken, TooManyAttempts):
            b.accounts.login(acme.ada_email, PASSWORD)
    with pytest.raises(TooManyAttempts):
        b.accounts.login(acme.ada_email, PASSWORD)
    webhook = acme.pending_webhook
    assert b.payments.handle_webhook("test", webhook.body, webhook.headers).received == 1

    assert a.accounts.login(acme.ada_email, PASSWORD).id == acme.ada
    assert a.accounts.inspect(acme.magic_token).member_id == acme.ada
    assert a.accounts.redeem(acme.magic_token).id == acme.ada
    assert a.accounts.redeem_code(acme.ada_email, acme.magic_code).id == acme.ada
    assert a.accounts.inspect(acme.reset_token).member_id == acme.ada
    a.accounts.reset_password(acme.reset_token, NEW_PASSWORD, NEW_PASSWORD)
    assert a.accounts.login(acme.ada_email, NEW_PASSWORD).id == acme.ada
    # B's inbox holding the event does not make it a duplicate in A's.
    receipt = a.payments.handle_webhook("test", webhook.body, webhook.headers)
    assert (receipt.received, receipt.duplicates, receipt.applied) == (1, 0, 1)
    assert a.checkout.get(acme.pending_purchase).status is PurchaseStatus.PAID


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[SqlStorage, TestPortal, Acme, TestPortal, Acme]]:
    """A and C (``initech``), built by the same calls: most of their ids are the same."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    storage = SqlStorage(url)
    try:
        a = make_test_portal(storage, tenant="acme", default_gateway="test")
        c = make_test_portal(storage, tenant="initech", default_gateway="test")
        acme, initech = _build_acme(a), _build_acme(c, name="initech")
        acme = replace(acme, ids=_generated_ids(storage, a.tenant))
        initech = replace(initech, ids=_generated_ids(storage, c.tenant))
        yield storage, a, acme, c, initech
    finally:
        storage.close()


def test_a_twin_changing_its_records_under_the_same_ids_leaves_a_alone(
    twins: tuple[SqlStorage, TestPortal, Acme, TestPortal, Acme],
) -> None:
    """Every call of both tables, made by C on its own records whose ids are A's."""
    _storage, a, acme, c, initech = twins
    shared = acme.ids & initech.ids
    assert {acme.product, acme.lesson, acme.ada, acme.certificate.id, acme.message} <= shared
    assert len(shared) > 0.9 * len(acme.ids)
    own = Globex(
        product=initech.drip_product,
        category=initech.category2,
        lesson=initech.drip_lesson,
        offer=initech.free_offer,
        paid_offer=initech.one_time_offer,
        member=initech.fay,
        purchase=initech.free_purchase,
        paid_purchase=initech.one_time_purchase,
        rule=initech.rule,
    )
    before = snapshot(a, a.tenant)
    attempts = [*(attempt for _, attempt in _cross(writes=False)), *BLIND_CALLS.values()]
    attempts += [attempt for _, attempt in _cross(writes=True)]
    done = 0
    for attempt in attempts:
        try:
            attempt.call(c, initech, own)
            done += 1
        except MembershipError:
            pass
    c.clock.advance(days=400)
    c.tick()
    assert done > len(attempts) / 2  # most of them changed or read C's records
    assert _changed(before, snapshot(a, a.tenant)) == []


# -- the table covers every service ---------------------------------------------------

#: Parameter names that identify a record (besides ``id``, ``*_id`` and ``*_ids``).
_IDENTIFYING = frozenset({"id", "serial", "token", "email", "code"})


def _identifies(parameter: str) -> bool:
    return parameter in _IDENTIFYING or parameter.endswith(("_id", "_ids"))


def _service_methods() -> dict[str, bool]:
    """Every public method of every service of a portal: whether it takes an identifier."""
    portal = make_test_portal()
    methods: dict[str, bool] = {}
    for attribute in dir(portal):
        service = getattr(portal, attribute)
        if attribute.startswith("_") or not type(service).__module__.startswith(
            "membership_core.services."
        ):
            continue
        for name, function in inspect.getmembers(type(service), inspect.isfunction):
            if not name.startswith("_"):
                parameters = inspect.signature(function).parameters
                methods[f"{attribute}.{name}"] = any(_identifies(p) for p in parameters)
    portal.close()
    return methods


def test_the_tables_cover_every_public_service_method() -> None:
    methods = _service_methods()
    services = {name.split(".")[0] for name in methods}
    assert len(services) >= 13, services
    assert (
        sorted(m for m, identifies in methods.items() if identifies and m not in CROSS_CALLS) == []
    )
    assert sorted(m for m in methods if m not in CROSS_CALLS and m not in BLIND_CALLS) == []
    assert sorted(k for k in [*CROSS_CALLS, *BLIND_CALLS] if k not in methods) == []
    assert sorted(set(CROSS_CALLS) & set(BLIND_CALLS)) == []
    assert [name for name, attempts in CROSS_CALLS.items() if not attempts] == []
