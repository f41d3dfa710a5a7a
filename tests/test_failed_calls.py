"""A failed call leaves storage exactly as it was, on SQLite and on PostgreSQL.

The first cases fail during validation, before anything is written. The later
ones fail *after* writes inside the call's transaction (a unique key or id
taken halfway through, a competing request winning a race, a plugin raising)
or after a compensated step (a coupon reserved, then given back): every row
of every collection must be exactly as before the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

import pytest

from membership_core import (
    Conflict,
    Coupon,
    MembershipError,
    Money,
    OneTime,
    PaymentDeclined,
    PercentOff,
    Portal,
    hookimpl,
)
from membership_core.adapters.ids import RandomIds
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.adapters.sql.schema import tables
from membership_core.ports.payments import PaymentRequest, PaymentResult
from membership_core.ports.storage import COLLECTIONS
from membership_core.services.settings import EXPORT_FORMAT
from membership_core.testing import TestPortal
from membership_core.testing.gateway import Decline, Raise, TestGateway

from .conftest import PortalFactory
from .helpers import Course, Snapshot, build_course, snapshot


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQL back ends only: the snapshot reads the tables themselves."""
    return str(request.param)


def test_the_snapshot_covers_every_collection() -> None:
    assert {c.name for c in COLLECTIONS} <= set(tables)


class World(NamedTuple):
    portal: TestPortal
    course: Course
    empty_product_id: str
    empty_category_id: str


@pytest.fixture
def world(open_portal: PortalFactory) -> World:
    """A portal with a course on sale, an empty product, and a member (ada)."""
    portal = open_portal()
    course = build_course(portal, lessons=2)
    empty = portal.catalog.create_product("Empty")
    category = portal.catalog.add_category(empty.id, "Only a category")
    portal.members.invite("ada@example.com")
    return World(portal, course, empty.id, category.id)


FAILING_CALLS: list[tuple[str, Callable[[World], object]]] = [
    ("empty title", lambda w: w.portal.catalog.create_product("")),
    (
        "lesson in a missing category",
        lambda w: w.portal.catalog.add_lesson(w.course.product.id, "cat_999999", "x"),
    ),
    (
        "publish a product without lessons",
        lambda w: w.portal.catalog.publish_product(w.empty_product_id),
    ),
    (
        "bad email at checkout",
        lambda w: w.portal.checkout.purchase(w.course.offer.id, email="nope"),
    ),
    ("missing offer", lambda w: w.portal.checkout.purchase("off_999999", email="a@example.com")),
    (
        "complete as a missing member",
        lambda w: w.portal.progress.complete_lesson("mem_999999", w.course.lessons[0].id),
    ),
    ("bad timezone", lambda w: w.portal.settings.update_site(timezone="Mars/Olympus")),
    (
        "bad currency among good fields",
        lambda w: w.portal.settings.update_site(title="New title", currency="ABC"),
    ),
    ("duplicate invite", lambda w: w.portal.members.invite("ADA@example.com")),
    (
        "a settings import failing after it claimed a sub-domain",
        lambda w: w.portal.settings.import_settings(
            {
                "format": EXPORT_FORMAT,
                "settings": {
                    "domain": {"subdomain": "fresh", "custom_domain": None},
                    "email": {"drip": {"enabled": True, "template_id": "tpl_999999"}},
                },
            }
        ),
    ),
    (
        "enable the app without an icon",
        lambda w: w.portal.settings.update_app(enabled=True, name="Acme"),
    ),
    (
        "custom CSS that would end its style element",
        lambda w: w.portal.settings.update_advanced(custom_css="a{}</style>"),
    ),
    ("a logo that is not an image", lambda w: w.portal.settings.update_branding(logo=b"nope")),
    (
        "reorder leaving a category out",
        lambda w: w.portal.catalog.reorder_categories(w.course.product.id, []),
    ),
    (
        "move into another product's category",
        lambda w: w.portal.catalog.move_lesson(w.course.lessons[0].id, w.empty_category_id, 0),
    ),
    (
        "a certificate for a course not completed",
        lambda w: w.portal.certificates.issue(
            w.portal.members.find_by_email("ada@example.com").id, w.course.product.id
        ),
    ),
    (
        "a certificate template nobody could verify",
        lambda w: w.portal.certificates.create_template("Bad", html="<p>no link</p>"),
    ),
    (
        "a missing certificate template for a product",
        lambda w: w.portal.certificates.use_template(w.course.product.id, "ctpl_999999"),
    ),
    (
        "revoke without a reason",
        lambda w: w.portal.certificates.revoke("cert_999999", reason=" "),
    ),
    (
        "reissue a missing certificate",
        lambda w: w.portal.certificates.reissue("cert_999999", reason="x"),
    ),
]


@pytest.mark.parametrize(("name", "call"), FAILING_CALLS, ids=[n for n, _ in FAILING_CALLS])
def test_failed_call_changes_nothing(
    world: World, name: str, call: Callable[[World], object]
) -> None:
    before = snapshot(world.portal)
    with pytest.raises(MembershipError):
        call(world)
    assert snapshot(world.portal) == before


# -- failures after a partial write ---------------------------------------------------


class TakenIds:
    """Fresh ids, except for the prefixes in ``taken``: those get an id already stored.

    Models another app server whose id generator handed out the same id: the
    write that uses it meets a unique-key ``Conflict`` after every write the
    call made before it in the same transaction.
    """

    def __init__(self, taken: Mapping[str, str]) -> None:
        self._taken = dict(taken)
        self._fresh = RandomIds()

    def new(self, prefix: str) -> str:
        return self._taken.get(prefix) or self._fresh.new(prefix)


@pytest.fixture
def other_server(storage_url: str) -> Iterator[Callable[..., Portal]]:
    """Open the same portal (database and tenant) as another app server would."""
    opened: list[Portal] = []

    def factory(**options: Any) -> Portal:
        options.setdefault("mailer", MemoryMailer())
        portal = Portal.open(storage_url, load_entrypoints=False, **options)
        opened.append(portal)
        return portal

    yield factory
    for portal in opened:
        portal.close()


def _one_id(portal: Portal, collection: str) -> str:
    """The id of a row of ``collection`` (the world holds at least one)."""
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return str(getattr(uow, collection).find(limit=1)[0].id)


def test_checkout_whose_grant_hits_a_taken_id_writes_nothing(
    world: World, other_server: Callable[..., Portal]
) -> None:
    """Member, events, purchase and payment are written, then the enrollment conflicts."""
    world.portal.checkout.purchase(world.course.offer.id, email="ada@example.com")
    server = other_server(ids=TakenIds({"enr": _one_id(world.portal, "enrollments")}))
    before = snapshot(world.portal)
    with pytest.raises(Conflict, match="enrollments"):
        server.checkout.purchase(world.course.offer.id, email="new@example.com", first_name="New")
    assert snapshot(world.portal) == before
    with pytest.raises(MembershipError):
        server.members.find_by_email("new@example.com")


def test_offer_whose_second_write_conflicts_writes_nothing(
    world: World, other_server: Callable[..., Portal]
) -> None:
    """The offer row is written, then its first product link hits a taken id."""
    server = other_server(ids=TakenIds({"ofp": _one_id(world.portal, "offer_products")}))
    before = snapshot(world.portal)
    with pytest.raises(Conflict, match="offer_products"):
        server.offers.create_offer("Bundle", [world.course.product.id, world.empty_product_id])
    assert snapshot(world.portal) == before


def test_completion_whose_course_record_conflicts_writes_nothing(
    world: World, other_server: Callable[..., Portal]
) -> None:
    """The lesson completion, its event and the activity are written, then the course
    completion hits a taken id: the member's progress is as it was."""
    portal = world.portal
    purchase = portal.checkout.purchase(world.course.offer.id, email="ada@example.com")
    first, last = world.course.lessons
    portal.progress.complete_lesson(purchase.member_id, first.id)
    other = build_course(portal, lessons=1, title="Other")
    other_purchase = portal.checkout.purchase(other.offer.id, email="ada@example.com")
    portal.progress.complete_lesson(other_purchase.member_id, other.lessons[0].id)
    server = other_server(ids=TakenIds({"ccm": _one_id(portal, "course_completions")}))
    before = snapshot(portal)
    with pytest.raises(Conflict, match="course_completions"):
        server.progress.complete_lesson(purchase.member_id, last.id)
    assert snapshot(portal) == before


def test_reissue_whose_new_certificate_conflicts_writes_nothing(
    world: World, other_server: Callable[..., Portal]
) -> None:
    """The replacement's event is recorded, then its id is taken: the old certificate
    stays valid, unrevoked, and no replacement exists."""
    portal = world.portal
    purchase = portal.checkout.purchase(world.course.offer.id, email="ada@example.com")
    for lesson in world.course.lessons:
        portal.progress.complete_lesson(purchase.member_id, lesson.id)
    (certificate,) = portal.certificates.for_member(purchase.member_id)
    server = other_server(ids=TakenIds({"cert": certificate.id}))
    before = snapshot(portal)
    with pytest.raises(Conflict, match="certificates"):
        server.certificates.reissue(certificate.id, reason="typo")
    assert snapshot(portal) == before
    assert portal.certificates.get(certificate.id).revoked_at is None


class RacingGateway(TestGateway):
    """A test gateway during whose next payment another request runs to completion."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Callable[[], None] | None = None

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().create_payment(request)


def test_checkout_losing_an_idempotency_race_keeps_only_the_winner(
    open_portal: PortalFactory, other_server: Callable[..., Portal]
) -> None:
    """While the gateway charges, a request with the same key for another buyer commits.

    The loser then creates its member (and its event) and tries to write the
    purchase, whose id the key fixes: a Conflict, then a refusal on
    ``idempotency_key`` (used for another buyer). The loser's member must be
    gone with its transaction.
    """
    gateway = RacingGateway()
    portal = open_portal(gateways={"test": gateway}, default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("40", "EUR"))
    )
    portal.offers.publish(offer.id)
    winner = other_server(gateways={"test": TestGateway()}, default_gateway="test")
    before: list[Snapshot] = []

    def race() -> None:
        winner.checkout.purchase(offer.id, email="first@example.com", idempotency_key="order-1")
        before.append(snapshot(portal))

    gateway.race = race
    with pytest.raises(MembershipError) as refused:  # Conflict or ValidationError
        portal.checkout.purchase(offer.id, email="second@example.com", idempotency_key="order-1")
    assert refused.value.field == "idempotency_key"
    assert before, "the competing checkout did not run"
    after = snapshot(portal)
    assert after == before[0]
    assert any("first@example.com" in repr(row) for row in after["members"])
    assert not any("second@example.com" in repr(row) for row in after["members"])


FAILED_CHARGES = [Decline("insufficient_funds"), Raise(TimeoutError("gateway timed out"))]


def _fail_a_charge_with_a_coupon(
    open_portal: PortalFactory, outcome: Decline | Raise
) -> tuple[TestPortal, Snapshot]:
    """Put a paid offer and a coupon on sale; an hour later, a checkout using the
    coupon fails at the gateway. Return the portal and the snapshot before it."""
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    price = OneTime(Money.of("40", "EUR"))
    offer = portal.offers.create_offer("Paid", [course.product.id], plan=price)
    portal.offers.publish(offer.id)
    portal.offers.create_coupon(Coupon("HALF", PercentOff(50)))
    portal.clock.advance(timedelta(hours=1))
    before = snapshot(portal)
    portal.gateway.script(outcome)
    expected = PaymentDeclined if isinstance(outcome, Decline) else TimeoutError
    with pytest.raises(expected):
        portal.checkout.purchase(offer.id, email="buyer@example.com", coupon_code="half")
    return portal, before


@pytest.mark.parametrize("outcome", FAILED_CHARGES, ids=["declined", "gateway down"])
def test_failed_charge_gives_the_reserved_coupon_back(
    open_portal: PortalFactory, outcome: Decline | Raise
) -> None:
    """The coupon's use is counted (and committed) before the charge; a failed charge
    gives it back. Nothing else was written."""
    portal, before = _fail_a_charge_with_a_coupon(open_portal, outcome)
    after = snapshot(portal)
    assert {k: v for k, v in after.items() if k != "coupons"} == {
        k: v for k, v in before.items() if k != "coupons"
    }
    assert len(after["coupons"]) == len(before["coupons"]) == 1
    assert portal.offers.coupon("HALF").redemptions == 0


@pytest.mark.parametrize("outcome", FAILED_CHARGES, ids=["declined", "gateway down"])
def test_failed_charge_leaves_the_coupon_row_untouched(
    open_portal: PortalFactory, outcome: Decline | Raise
) -> None:
    portal, before = _fail_a_charge_with_a_coupon(open_portal, outcome)
    assert snapshot(portal)["coupons"] == before["coupons"]


class Veto:
    """A plugin whose access decision hook raises, inside the caller's unit of work."""

    @hookimpl
    def membership_access_decision(self, **_: object) -> None:
        raise RuntimeError("the plugin's service is down")


def test_plugin_raising_inside_a_write_unit_of_work_writes_nothing(
    world: World, other_server: Callable[..., Portal]
) -> None:
    """complete_lesson locks the member and asks plugins while its transaction is open."""
    purchase = world.portal.checkout.purchase(world.course.offer.id, email="ada@example.com")
    server = other_server(plugins=[Veto()])
    before = snapshot(world.portal)
    with pytest.raises(RuntimeError, match="service is down"):
        server.progress.complete_lesson(purchase.member_id, world.course.lessons[0].id)
    assert snapshot(world.portal) == before


class BrokenTemplates:
    """A plugin whose template context hook raises while an email is being queued."""

    @hookimpl
    def membership_template_context(self, **_: object) -> None:
        raise RuntimeError("template data unavailable")


def test_handler_failing_in_a_plugin_leaves_no_trace_and_retries(
    open_portal: PortalFactory,
) -> None:
    """The completion email's handler fails in a plugin, in its own transaction:
    no message and no "handled" marker are left, the event stays queued, and a
    tick that fails the same way changes nothing."""
    portal = open_portal(plugins=[BrokenTemplates()])
    course = build_course(portal, lessons=1)
    purchase = portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.progress.complete_lesson(purchase.member_id, course.lessons[0].id)  # commits
    portal.tick()  # a first tick also writes its checkpoints; the handler fails again
    before = snapshot(portal)
    assert before["certificates"]  # the event's other handler did its work
    assert before["mail"] == []
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        assert uow.events.count({"dispatched_at": None}) == 1  # CourseCompleted, queued
        # The default rule's email step left no marker (its certificate step did).
        (rule,) = uow.automation_rules.find()
        email_step = f"automation:{rule.id}:send_email:course_completed"
        assert uow.handled_events.count({"handler": email_step}) == 0
        assert uow.handled_events.count({"handler": f"automation:{rule.id}:issue_certificate"})
    portal.tick()
    assert snapshot(portal) == before
