"""The storage port: a unit of work per portal, holding one repository per collection.

Every repository is scoped to one portal (tenant) by construction: there is no
way to name another portal's records through it. Adapters derive their schema
from :data:`COLLECTIONS`, so the in-memory and SQL adapters enforce the same
unique keys and answer the same queries (the storage contract suite checks it).

Example::

    with storage.unit_of_work("acme") as uow:
        uow.products.add(product)
        uow.commit()            # leaving the block without commit rolls back
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import attrs

from ..domain.assessments import Assessment, Attempt
from ..domain.automations import AutomationRule
from ..domain.billing import Billing
from ..domain.catalog import Category, Lesson, Product
from ..domain.certificates import (
    Certificate,
    CertificateDesign,
    CertificateTemplate,
    PortalKey,
)
from ..domain.checkpoints import Checkpoint
from ..domain.coupons import StoredCoupon
from ..domain.credentials import AccountRequest, AccountToken, Credential
from ..domain.email_settings import StoredTemplate
from ..domain.enrollments import Enrollment, Purchase
from ..domain.events import EventRecord, HandledEvent
from ..domain.mail import OutboxMessage
from ..domain.members import Member
from ..domain.offers import Offer, OfferProduct
from ..domain.payments import Payment, Refund, WebhookEvent
from ..domain.progress import (
    CourseCompletion,
    DripProgress,
    LessonActivity,
    LessonCompletion,
    ProductActivity,
)
from ..domain.settings import DomainClaim, PortalSettings, SettingsChange, SettingsStamp
from ..domain.throttle import AttemptCounter

__all__ = [
    "COLLECTIONS",
    "AccessFacts",
    "Collection",
    "Repositories",
    "Repository",
    "Storage",
    "UnitOfWork",
    "read_access_facts",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@attrs.frozen
class Collection(Generic[T]):
    """Describes one stored collection: its record type, unique keys and indexes.

    Every record type has an ``id`` attribute. ``unique`` and ``indexes`` list
    field-name tuples; adapters scope both to the portal. ``unique_across_portals``
    keys are the exception: no two portals in one database may hold the same
    values (a sub-domain names one portal only). Reads stay scoped to the portal.
    """

    name: str
    type: type[T]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    unique_across_portals: tuple[tuple[str, ...], ...] = ()


COLLECTIONS: tuple[Collection[Any], ...] = (
    Collection("products", Product, indexes=(("title",), ("created_at",), ("updated_at",))),
    Collection("categories", Category, indexes=(("product_id",),)),
    Collection("lessons", Lesson, indexes=(("product_id",), ("category_id",))),
    Collection("offers", Offer, indexes=(("title",), ("created_at",), ("updated_at",))),
    Collection(
        "offer_products",
        OfferProduct,
        unique=(("offer_id", "product_id"),),
        indexes=(("product_id",),),
    ),
    Collection("members", Member, unique=(("email_key",),)),
    Collection("credentials", Credential, unique=(("member_id",),)),
    Collection(
        "account_tokens",
        AccountToken,
        unique=(("token_hash",),),
        indexes=(("member_id", "purpose"),),
    ),
    Collection("account_requests", AccountRequest, indexes=(("requested_at",),)),
    Collection("attempt_counters", AttemptCounter),
    Collection(
        "enrollments",
        Enrollment,
        indexes=(("member_id", "product_id"), ("purchase_id",), ("ends_at",), ("product_id",)),
    ),
    Collection(
        "purchases",
        Purchase,
        unique=(("idempotency_key",),),
        indexes=(
            ("member_id",),
            ("offer_id",),
            ("gateway", "gateway_reference"),
            ("status", "paid_at"),
        ),
    ),
    Collection(
        "payments",
        Payment,
        unique=(("purchase_id", "sequence"),),
        indexes=(("gateway", "gateway_reference"),),
    ),
    Collection(
        "billings",
        Billing,
        unique=(("purchase_id",),),
        indexes=(("next_charge_at",), ("member_id",)),
    ),
    Collection(
        "refunds",
        Refund,
        indexes=(("purchase_id",), ("gateway", "gateway_reference")),
    ),
    Collection(
        "webhook_events",
        WebhookEvent,
        unique=(("gateway", "event_id"),),
        indexes=(("applied_at", "received_at"), ("received_at",)),
    ),
    Collection(
        "lesson_completions",
        LessonCompletion,
        unique=(("member_id", "lesson_id"),),
        indexes=(("member_id", "product_id"),),
    ),
    Collection("course_completions", CourseCompletion, unique=(("member_id", "product_id"),)),
    Collection(
        "product_activity",
        ProductActivity,
        unique=(("member_id", "product_id"),),
        indexes=(("product_id", "last_activity_at"),),
    ),
    Collection("lesson_activity", LessonActivity, unique=(("member_id", "lesson_id"),)),
    Collection(
        "drip_progress",
        DripProgress,
        unique=(("member_id", "product_id"),),
        indexes=(("next_unlock_at",), ("product_id",)),
    ),
    Collection(
        "certificates",
        Certificate,
        # A reissue is the next generation: one certificate per member, product and
        # generation, so concurrent issues (or reissues) of the same one cannot both win.
        unique=(
            ("serial",),
            ("member_id", "product_id", "generation"),
            ("status_list", "status_index"),
        ),
        indexes=(("status_list", "revoked_at"),),
    ),
    Collection("portal_keys", PortalKey),
    Collection("certificate_templates", CertificateTemplate, unique=(("name",),)),
    Collection("certificate_designs", CertificateDesign),
    Collection("events", EventRecord, indexes=(("dispatched_at", "occurred_at"),)),
    Collection("handled_events", HandledEvent, unique=(("event_id", "handler"),)),
    Collection(
        "mail",
        OutboxMessage,
        unique=(("idempotency_key",),),
        indexes=(("status", "next_attempt_at"), ("member_id",)),
    ),
    Collection("portal_settings", PortalSettings),
    Collection("settings_stamps", SettingsStamp),
    Collection("settings_changes", SettingsChange, indexes=(("version",), ("area", "version"))),
    # A sub-domain or a verified custom domain names one portal of the database.
    Collection("domain_claims", DomainClaim, unique_across_portals=(("id", "name"),)),
    Collection("assessments", Assessment, unique=(("lesson_id",),), indexes=(("product_id",),)),
    Collection(
        "assessment_attempts",
        Attempt,
        unique=(("assessment_id", "member_id", "number"),),
        indexes=(("member_id",),),
    ),
    Collection("email_templates", StoredTemplate, unique=(("name",),)),
    Collection("checkpoints", Checkpoint),
    Collection("coupons", StoredCoupon, unique=(("code",),)),
    # Every recorded event that has a trigger reads (trigger, enabled): see listens_to.
    Collection("automation_rules", AutomationRule, indexes=(("trigger", "enabled"),)),
)


class Repository(Protocol[T]):
    """Records of one collection, in one portal, inside one unit of work."""

    def get(self, id: str) -> T | None:
        """Return the record with this id, or ``None``."""
        ...

    def get_for_update(self, id: str) -> T | None:
        """Like :meth:`get`, and lock the record until the unit of work ends."""
        ...

    def add(self, item: T) -> None:
        """Insert a new record; raise ``Conflict`` if its id or a unique key is taken."""
        ...

    def update(self, item: T) -> None:
        """Replace the record with ``item.id``; raise ``NotFound`` or ``Conflict``."""
        ...

    def delete(self, id: str) -> None:
        """Remove the record; raise ``NotFound`` if it does not exist."""
        ...

    def find(
        self,
        where: Mapping[str, object] | None = None,
        *,
        contains: tuple[str, str] | None = None,
        order_by: Sequence[str] = (),
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[T]:
        """Records whose fields equal ``where`` (``None`` matches a missing value).

        ``contains=(field, text)`` keeps records whose ``field`` contains ``text``
        case-insensitively. Results are ordered by ``order_by`` then ``id``.
        """
        ...

    def find_in(self, field: str, values: Sequence[object]) -> list[T]:
        """Records whose ``field`` is one of ``values``, ordered by id."""
        ...

    def count(self, where: Mapping[str, object] | None = None) -> int:
        """How many records match ``where``."""
        ...

    def find_due(
        self,
        field: str,
        at: datetime,
        where: Mapping[str, object] | None = None,
        *,
        after: datetime | None = None,
        limit: int | None = None,
        claim: bool = False,
    ) -> list[T]:
        """Records whose ``field`` is set and at or before ``at``, earliest first.

        ``after`` (exclusive) bounds the range from below: ``after < field <= at``.

        One indexed range query (index ``field`` together with the ``where``
        fields). ``claim=True`` locks the rows it returns until the unit of work
        ends and skips rows another worker has locked (``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL; SQLite and memory serialize writers anyway), so
        several workers can share scheduled work without taking the same item.
        """
        ...


class Repositories(Protocol):
    """One repository per collection, named like the collection, in one portal."""

    tenant: str
    products: Repository[Product]
    categories: Repository[Category]
    lessons: Repository[Lesson]
    offers: Repository[Offer]
    offer_products: Repository[OfferProduct]
    members: Repository[Member]
    credentials: Repository[Credential]
    account_tokens: Repository[AccountToken]
    account_requests: Repository[AccountRequest]
    attempt_counters: Repository[AttemptCounter]
    enrollments: Repository[Enrollment]
    purchases: Repository[Purchase]
    payments: Repository[Payment]
    billings: Repository[Billing]
    refunds: Repository[Refund]
    webhook_events: Repository[WebhookEvent]
    lesson_completions: Repository[LessonCompletion]
    course_completions: Repository[CourseCompletion]
    product_activity: Repository[ProductActivity]
    lesson_activity: Repository[LessonActivity]
    drip_progress: Repository[DripProgress]
    certificates: Repository[Certificate]
    portal_keys: Repository[PortalKey]
    certificate_templates: Repository[CertificateTemplate]
    certificate_designs: Repository[CertificateDesign]
    events: Repository[EventRecord]
    handled_events: Repository[HandledEvent]
    mail: Repository[OutboxMessage]
    portal_settings: Repository[PortalSettings]
    settings_stamps: Repository[SettingsStamp]
    settings_changes: Repository[SettingsChange]
    domain_claims: Repository[DomainClaim]
    assessments: Repository[Assessment]
    assessment_attempts: Repository[Attempt]
    email_templates: Repository[StoredTemplate]
    checkpoints: Repository[Checkpoint]
    coupons: Repository[StoredCoupon]
    automation_rules: Repository[AutomationRule]


@attrs.frozen
class AccessFacts:
    """What an access decision reads, fetched together (see :meth:`UnitOfWork.access_facts`).

    ``lesson`` is set when the facts were asked for by lesson. ``enrollments``
    are the member's grants in the product, by id.
    """

    member: Member
    product: Product
    lesson: Lesson | None
    enrollments: tuple[Enrollment, ...]


def read_access_facts(
    uow: Repositories,
    member_id: str,
    *,
    product_id: str | None = None,
    lesson_id: str | None = None,
) -> AccessFacts | None:
    """:meth:`UnitOfWork.access_facts` through plain repository reads.

    Adapters without a faster way (the memory one) use it as it is; the SQL
    adapter answers the same question with one joined query.
    """
    member = uow.members.get(member_id)
    lesson = uow.lessons.get(lesson_id) if lesson_id is not None else None
    if lesson_id is not None:
        if lesson is None:
            return None
        product_id = lesson.product_id
    product = uow.products.get(product_id) if product_id is not None else None
    if member is None or product is None:
        return None
    enrollments = uow.enrollments.find({"member_id": member_id, "product_id": product.id})
    return AccessFacts(member, product, lesson, tuple(enrollments))


class UnitOfWork(Repositories, Protocol):
    """One transaction in one portal. Rolls back unless :meth:`commit` is called."""

    def access_facts(
        self,
        member_id: str,
        *,
        product_id: str | None = None,
        lesson_id: str | None = None,
    ) -> AccessFacts | None:
        """The member, the product (of ``lesson_id`` when given) and the member's grants in it.

        Give exactly one of ``product_id`` and ``lesson_id``. ``None`` when the
        member, the product or the lesson does not exist in this portal. The
        same answer as the separate reads (:func:`read_access_facts`), in as
        few round trips as the adapter can: access decisions and outlines run
        on every page a member opens.
        """
        ...

    def commit(self) -> None:
        """Make every change of this unit of work durable, atomically."""
        ...

    def rollback(self) -> None:
        """Discard every change of this unit of work."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Storage(Protocol):
    """A storage back end: opens units of work and knows its portals."""

    def unit_of_work(self, tenant: str, *, write: bool = True) -> UnitOfWork:
        """Open a unit of work in ``tenant``. ``write=False`` promises only reads."""
        ...

    def domain_holder(self, kind: str, name: str) -> str | None:
        """The portal (tenant) whose ``domain_claims`` hold ``name`` of ``kind``, or ``None``.

        The one read across portals, for routing a request by its host name
        to the portal it belongs to (see :func:`membership_core.tenant_for_host`);
        it tells nothing but which portal a public name points at.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
