"""Builders for stored records, with sensible defaults, for storage-level tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from typing import Any

from membership_core.domain.assessments import (
    Assessment,
    Attempt,
    Choice,
    MatchMode,
    Question,
    QuestionKind,
    QuestionResult,
    Score,
)
from membership_core.domain.automations import (
    AutomationRule,
    Conditions,
    GrantOffer,
    HostAction,
    IssueCertificate,
    SendEmail,
    Trigger,
)
from membership_core.domain.billing import Billing, BillingStatus
from membership_core.domain.catalog import Category, Lesson, LessonKind, Product, ProductStatus
from membership_core.domain.certificates import (
    Certificate,
    CertificateDesign,
    CertificateTemplate,
    PortalKey,
)
from membership_core.domain.checkpoints import Checkpoint
from membership_core.domain.coupons import StoredCoupon
from membership_core.domain.credentials import (
    AccountRequest,
    AccountToken,
    Credential,
    TokenPurpose,
)
from membership_core.domain.drip import (
    AfterAssessment,
    AfterDelay,
    AfterLesson,
    DripSettings,
    FromCohortStart,
    OnDate,
)
from membership_core.domain.email_settings import EmailChoice, EmailSettings, StoredTemplate
from membership_core.domain.enrollments import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Purchase,
    PurchaseStatus,
)
from membership_core.domain.events import EventRecord, HandledEvent
from membership_core.domain.mail import EmailMessage, MailStatus, OutboxMessage
from membership_core.domain.members import Member, MemberStatus, email_key
from membership_core.domain.money import Money
from membership_core.domain.offers import (
    CheckoutPage,
    ContactField,
    FieldType,
    Offer,
    OfferProduct,
    OfferStatus,
    ServiceAgreement,
    Upsell,
    UpsellKind,
)
from membership_core.domain.payments import (
    Payment,
    PaymentState,
    Refund,
    RefundState,
    WebhookEvent,
)
from membership_core.domain.pricing import (
    AmountOff,
    BillingPeriod,
    ChargeKind,
    Coupon,
    Interval,
    OneTime,
    PercentOff,
    Repeating,
    Subscription,
)
from membership_core.domain.progress import (
    CourseCompletion,
    DripProgress,
    LessonActivity,
    LessonCompletion,
    ProductActivity,
)
from membership_core.domain.settings import (
    AdvancedSettings,
    AppIcon,
    AppSettings,
    BrandingSettings,
    BuilderSettings,
    DomainClaim,
    DomainSettings,
    PortalSettings,
    SettingsChange,
    SettingsStamp,
    SiteSettings,
    StoredImage,
)
from membership_core.domain.throttle import AttemptCounter
from membership_core.domain.windows import AccessWindow, EndAfter, StartOn

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_n = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_n):08d}"


def product(**kw: Any) -> Product:
    values: dict[str, Any] = {
        "id": _id("prod"),
        "title": "Course",
        "description": "",
        "image_url": None,
        "status": ProductStatus.DRAFT,
        "created_at": T0,
        "updated_at": T0,
    }
    return Product(**(values | kw))


def category(**kw: Any) -> Category:
    values: dict[str, Any] = {
        "id": _id("cat"),
        "product_id": "prod_x",
        "parent_id": None,
        "title": "Module",
        "position": 0,
        "created_at": T0,
    }
    return Category(**(values | kw))


def lesson(**kw: Any) -> Lesson:
    values: dict[str, Any] = {
        "id": _id("les"),
        "product_id": "prod_x",
        "category_id": "cat_x",
        "title": "Lesson",
        "kind": LessonKind.TEXT,
        "body": "",
        "media_url": None,
        "preview": False,
        "published": True,
        "required": True,
        "position": 0,
        "created_at": T0,
        "updated_at": T0,
    }
    return Lesson(**(values | kw))


def offer(**kw: Any) -> Offer:
    values: dict[str, Any] = {
        "id": _id("off"),
        "title": "Offer",
        "product_ids": ("prod_x",),
        "plan": OneTime(Money(1999, "EUR")),
        "status": OfferStatus.DRAFT,
        "created_at": T0,
        "updated_at": T0,
    }
    return Offer(**(values | kw))


def offer_with_everything(**kw: Any) -> Offer:
    page = CheckoutPage(
        "Join",
        "Copy",
        "https://video.example.com/v",
        (ContactField("company", "Company", FieldType.SELECT, True, ("A", "B")),),
        ServiceAgreement("Terms", "Be nice."),
    )
    return offer(
        image_url="https://cdn.example.com/o.png",
        checkout_page=page,
        upsell=Upsell("off_up", UpsellKind.ONE_CLICK),
        access_window=AccessWindow(StartOn(T0), EndAfter(30)),
        **kw,
    )


def offer_product(**kw: Any) -> OfferProduct:
    values: dict[str, Any] = {"id": _id("ofp"), "offer_id": "off_x", "product_id": "prod_x"}
    return OfferProduct(**(values | kw))


def member(**kw: Any) -> Member:
    email = kw.pop("email", f"m{next(_n)}@example.com")
    values: dict[str, Any] = {
        "id": _id("mem"),
        "email": email,
        "email_key": email_key(email),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status": MemberStatus.ACTIVE,
        "created_at": T0,
        "last_login_at": None,
        "external_ref": None,
        "credential_version": 2,
        "phone": "+44 20 7946 0000",
    }
    return Member(**(values | kw))


def enrollment(**kw: Any) -> Enrollment:
    values: dict[str, Any] = {
        "id": _id("enr"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "source": EnrollmentSource.PURCHASE,
        "purchase_id": None,
        "status": EnrollmentStatus.ACTIVE,
        "starts_at": T0,
        "ends_at": None,
        "granted_at": T0,
        "revoked_at": None,
        "reason": "support ticket 12",
        "revoke_reason": None,
    }
    return Enrollment(**(values | kw))


def purchase(**kw: Any) -> Purchase:
    values: dict[str, Any] = {
        "id": _id("pur"),
        "offer_id": "off_x",
        "member_id": "mem_x",
        "status": PurchaseStatus.PAID,
        "amount": Money(0, "USD"),
        "gateway": "manual",
        "gateway_reference": None,
        "idempotency_key": None,
        "created_at": T0,
        "paid_at": T0,
        "terms_accepted_at": T0,
        "terms_hash": "sha256:abc",
        "contact": {"company": "A"},
        "plan": OneTime(Money(4900, "USD")),
        "method_reference": "test_pm_1",
        "upsell_of": "pur_parent",
        "product_ids": ("prod_a", "prod_b"),
        "coupon_code": "HALF",
        "request_fingerprint": "f" * 64,
    }
    return Purchase(**(values | kw))


def payment(**kw: Any) -> Payment:
    values: dict[str, Any] = {
        "id": _id("pay"),
        "purchase_id": "pur_x",
        "sequence": 2,
        "kind": ChargeKind.RENEWAL,
        "amount": Money(1999, "EUR"),
        "state": PaymentState.SUCCEEDED,
        "attempts": 3,
        "gateway": "test",
        "gateway_reference": "test_pay_1",
        "due_at": T0,
        "created_at": T0,
        "updated_at": T0,
        "paid_at": T0,
        "failure_reason": "insufficient_funds",
        "refunded": Money(500, "EUR"),
    }
    return Payment(**(values | kw))


def billing(**kw: Any) -> Billing:
    values: dict[str, Any] = {
        "id": _id("bil"),
        "purchase_id": "pur_x",
        "member_id": "mem_x",
        "offer_id": "off_x",
        "plan": Subscription(
            Money(1999, "EUR"),
            BillingPeriod(Interval.MONTH),
            trial_days=7,
            setup_fee=Money(500, "EUR"),
        ),
        "coupon": Coupon("HALF", PercentOff(50), Repeating(3), offer_ids=["off_x"]),
        "status": BillingStatus.PAST_DUE,
        "started_at": T0,
        "next_sequence": 3,
        "access_until": T0,
        "next_charge_at": T0,
        "paid_through": T0,
        "failed_attempts": 2,
        "first_failed_at": T0,
        "canceled_at": None,
        "ended_at": None,
        "updated_at": T0,
    }
    return Billing(**(values | kw))


def refund(**kw: Any) -> Refund:
    values: dict[str, Any] = {
        "id": _id("ref"),
        "purchase_id": "pur_x",
        "payment_id": "pay_x",
        "amount": Money(500, "EUR"),
        "state": RefundState.FAILED,
        "reason": "requested_by_customer",
        "gateway": "test",
        "gateway_reference": "test_re_1",
        "created_at": T0,
        "updated_at": T0,
        "failure_reason": "too late",
    }
    return Refund(**(values | kw))


def webhook_event(**kw: Any) -> WebhookEvent:
    values: dict[str, Any] = {
        "id": _id("whe"),
        "gateway": "test",
        "event_id": _id("evt"),
        "type": "payment_failed",
        "payment_reference": "test_pay_1",
        "amount": Money(1999, "EUR"),
        "occurred_at": T0,
        "received_at": T0,
        "purchase_id": "pur_x",
        "failure_reason": "card_declined",
        "refund_reference": None,
        "applied_at": T0,
        "outcome": "applied",
    }
    return WebhookEvent(**(values | kw))


def lesson_completion(**kw: Any) -> LessonCompletion:
    values: dict[str, Any] = {
        "id": _id("lcm"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "lesson_id": "les_x",
        "completed_at": T0,
    }
    return LessonCompletion(**(values | kw))


def course_completion(**kw: Any) -> CourseCompletion:
    values: dict[str, Any] = {
        "id": _id("ccm"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "completed_at": T0,
    }
    return CourseCompletion(**(values | kw))


def product_activity(**kw: Any) -> ProductActivity:
    values: dict[str, Any] = {
        "id": _id("pac"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "first_visit_at": T0,
        "last_activity_at": T0,
    }
    return ProductActivity(**(values | kw))


def product_with_drip(**kw: Any) -> Product:
    values: dict[str, Any] = {
        "drip": DripSettings(FromCohortStart(T0), "Europe/Berlin"),
        "drip_rules": {
            "cat_1": (AfterDelay(days=7, at=time(9, 0)), AfterLesson()),
            "les_1": (OnDate(datetime(2026, 3, 29, 2, 30)), AfterAssessment("asm_1")),
        },
        "certificate_template_id": "ctpl_x",
    }
    return product(**(values | kw))


def drip_progress(**kw: Any) -> DripProgress:
    values: dict[str, Any] = {
        "id": _id("dpg"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "unlocked_lesson_ids": frozenset({"les_1", "les_2"}),
        "next_unlock_at": T0,
        "evaluated_at": T0,
    }
    return DripProgress(**(values | kw))


def lesson_activity(**kw: Any) -> LessonActivity:
    values: dict[str, Any] = {
        "id": _id("lac"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "lesson_id": _id("les"),
        "video_percent": 42,
        "updated_at": T0,
    }
    return LessonActivity(**(values | kw))


def certificate(**kw: Any) -> Certificate:
    values: dict[str, Any] = {
        "id": _id("cert"),
        "member_id": "mem_x",
        "product_id": "prod_x",
        "serial": f"MC-{next(_n):08d}",
        "recipient_name": "Ada Lovelace",
        "course_title": "Course",
        "issuer_name": "Portal",
        "completed_at": T0,
        "issued_at": T0,
        "revoked_at": T0,
        "revocation_reason": "reissued: a typo",
        "course_description": "All about it.",
        "design_id": "cdsn_" + "0" * 40,
        "generation": 2,
        "replaces": "cert_prev",
        "replaced_by": "cert_next",
        "status_list": 3,
        "status_index": next(_n),
    }
    return Certificate(**(values | kw))


def portal_key(**kw: Any) -> PortalKey:
    values: dict[str, Any] = {"id": "certificates", "secret": "A" * 43, "created_at": T0}
    return PortalKey(**(values | kw))


def certificate_template(**kw: Any) -> CertificateTemplate:
    values: dict[str, Any] = {
        "id": _id("ctpl"),
        "name": f"Template {next(_n)}",
        "html": "<p>{{ certificate.recipient_name }} {{ certificate.verification_url }}</p>",
        "design_id": "cdsn_" + "1" * 40,
        "created_at": T0,
        "updated_at": T0,
    }
    return CertificateTemplate(**(values | kw))


def certificate_design(**kw: Any) -> CertificateDesign:
    values: dict[str, Any] = {"id": _id("cdsn"), "html": "<p>{{ certificate.serial }}</p>"}
    return CertificateDesign(**(values | {"created_at": T0} | kw))


def event_record(**kw: Any) -> EventRecord:
    values: dict[str, Any] = {
        "id": _id("evt"),
        "type": "CourseCompleted",
        "payload": {"member_id": "mem_x", "nested": {"list": [1, 2]}},
        "occurred_at": T0,
        "dispatched_at": None,
    }
    return EventRecord(**(values | kw))


def handled_event(**kw: Any) -> HandledEvent:
    values: dict[str, Any] = {
        "id": _id("hdl"),
        "event_id": "evt_x",
        "handler": "h",
        "handled_at": T0,
    }
    return HandledEvent(**(values | kw))


def outbox_message(**kw: Any) -> OutboxMessage:
    values: dict[str, Any] = {
        "id": _id("msg"),
        "idempotency_key": _id("key"),
        "kind": "welcome",
        "message": EmailMessage("msg_1", "a@example.com", "b@example.com", "Hi", "Hello"),
        "status": MailStatus.QUEUED,
        "attempts": 0,
        "created_at": T0,
        "next_attempt_at": T0,
        "sent_at": None,
        "last_error": None,
        "member_id": "mem_x",
    }
    return OutboxMessage(**(values | kw))


def _image(name: str, size: int) -> StoredImage:
    return StoredImage(
        f"https://cdn.example/{name}.png",
        f"default/{name}.png",
        "image/png",
        size,
        size,
        900,
        "ab" * 32,
    )


def portal_settings(**kw: Any) -> PortalSettings:
    """Every area away from its defaults, nested values included."""
    values: dict[str, Any] = {
        "id": "portal",
        "version": 7,
        "site": SiteSettings("Acme", "Europe/Berlin", "EUR", "help@acme.test"),
        "advanced": AdvancedSettings("a{}", "run()", "<meta name=x>", "<noscript></noscript>"),
        "branding": BrandingSettings(_image("logo", 640), _image("favicon", 32)),
        "builder": BuilderSettings(allow_video_download=True, allow_comments=False),
        "domain": DomainSettings("acme", "learn.acme.com", "tok", T0),
        "email": email_settings(),
        "app": AppSettings(
            True,
            "Acme Academy",
            "Acme",
            "Learn",
            "#112233",
            "#ffffff",
            _image("icon", 512),
            (AppIcon(_image("icon-192", 192), "any"), AppIcon(_image("icon-m", 512), "maskable")),
        ),
        "changed_at": T0,
    }
    return PortalSettings(**(values | kw))


def settings_stamp(**kw: Any) -> SettingsStamp:
    return SettingsStamp(**({"id": "portal", "version": 3} | kw))


def settings_change(**kw: Any) -> SettingsChange:
    values: dict[str, Any] = {
        "id": _id("chg"),
        "version": next(_n),
        "area": "site",
        "fields": ("title",),
        "before": {"title": "Membership Portal"},
        "after": {"title": "Acme"},
        "changed_by": "ada@acme.test",
        "changed_at": T0,
    }
    return SettingsChange(**(values | kw))


def domain_claim(**kw: Any) -> DomainClaim:
    return DomainClaim(**({"id": "subdomain", "name": f"acme{next(_n)}", "claimed_at": T0} | kw))


def assessment(**kw: Any) -> Assessment:
    values: dict[str, Any] = {
        "id": _id("asm"),
        "product_id": "prod_x",
        "lesson_id": _id("les"),
        "questions": (
            Question(
                "q1",
                QuestionKind.SINGLE_CHOICE,
                "Pick one",
                ("b",),
                (Choice("a", "A"), Choice("b", "B")),
                points=2,
            ),
            Question("q2", QuestionKind.SHORT_TEXT, "Say it", ("Élan",), match=MatchMode.EXACT),
        ),
        "pass_percent": 70,
        "max_attempts": 3,
        "wait_between": timedelta(hours=1),
        "time_limit": None,
        "shuffle": True,
        "created_at": T0,
        "updated_at": T0,
    }
    return Assessment(**(values | kw))


def assessment_attempt(**kw: Any) -> Attempt:
    values: dict[str, Any] = {
        "id": _id("att"),
        "assessment_id": "asm_x",
        "member_id": "mem_x",
        "number": next(_n),
        "seed": 123456789,
        "started_at": T0,
        "deadline": T0 + timedelta(minutes=30),
        "submitted_at": T0,
        "answers": {"q1": ("b",), "q2": ("élan",)},
        "score": Score(2, 3, 66, False, (QuestionResult("q1", True, 2),)),
        "late": False,
    }
    return Attempt(**(values | kw))


def email_settings(**kw: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "welcome": EmailChoice(enabled=False),
        "drip": EmailChoice(enabled=True, template_id="tpl_x", enabled_at=T0),
    }
    return EmailSettings(**(values | kw))


def stored_template(**kw: Any) -> StoredTemplate:
    values: dict[str, Any] = {
        "id": _id("tpl"),
        "name": f"Template {next(_n)}",
        "kind": "welcome",
        "subject": "Welcome, {{ member.first_name }}",
        "html": "<p>{{ login_url }}</p>",
        "text": None,
        "created_at": T0,
        "updated_at": T0,
    }
    return StoredTemplate(**(values | kw))


def checkpoint(**kw: Any) -> Checkpoint:
    values: dict[str, Any] = {"id": _id("chk"), "position": 1234, "updated_at": T0}
    return Checkpoint(**(values | kw))


def stored_coupon(**kw: Any) -> StoredCoupon:
    code = f"CODE{next(_n)}"
    values: dict[str, Any] = {
        "id": _id("cpn"),
        "code": code,
        "coupon": Coupon(
            code,
            AmountOff(Money(500, "EUR")),
            Repeating(2),
            expires_at=T0,
            max_redemptions=10,
            offer_ids=["off_a", "off_b"],
        ),
        "redemptions": 3,
        "active": False,
        "created_at": T0,
        "updated_at": T0,
    }
    return StoredCoupon(**(values | kw))


def credential(**kw: Any) -> Credential:
    values: dict[str, Any] = {
        "id": _id("crd"),
        "member_id": "mem_x",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "changed_at": T0,
    }
    return Credential(**(values | kw))


def account_token(**kw: Any) -> AccountToken:
    values: dict[str, Any] = {
        "id": _id("tok"),
        "member_id": "mem_x",
        "purpose": TokenPurpose.MAGIC_LINK,
        "token_hash": f"{next(_n):064x}",
        "created_at": T0,
        "expires_at": T0,
        "used_at": T0,
        "code_hash": "c0de",
    }
    return AccountToken(**(values | kw))


def account_request(**kw: Any) -> AccountRequest:
    values: dict[str, Any] = {
        "id": _id("acr"),
        "purpose": TokenPurpose.PASSWORD_RESET,
        "email": "ada@example.com",
        "requested_at": T0,
    }
    return AccountRequest(**(values | kw))


def attempt_counter(**kw: Any) -> AttemptCounter:
    values: dict[str, Any] = {
        "id": _id("att"),
        "failures": 3,
        "window_started_at": T0,
        "last_failure_at": T0,
    }
    return AttemptCounter(**(values | kw))


def automation_rule(**kw: Any) -> AutomationRule:
    values: dict[str, Any] = {
        "id": _id("rule"),
        "name": f"Rule {next(_n)}",
        "trigger": Trigger.ACCESS_GRANTED,
        "conditions": Conditions(product_ids=["prod_a", "prod_b"], offer_ids=["off_a"]),
        "actions": (
            IssueCertificate(),
            SendEmail("tpl_x"),
            GrantOffer("off_b"),
            HostAction("tag", {"tag": "alumni", "list": "crm-1"}),
        ),
        "enabled": True,
        "created_at": T0,
        "updated_at": T0,
        "enabled_at": T0,
    }
    return AutomationRule(**(values | kw))


#: One builder per storage collection, by collection name.
BUILDERS: dict[str, Any] = {
    "products": product_with_drip,
    "categories": category,
    "lessons": lesson,
    "offers": offer_with_everything,
    "offer_products": offer_product,
    "members": member,
    "credentials": credential,
    "account_tokens": account_token,
    "account_requests": account_request,
    "attempt_counters": attempt_counter,
    "enrollments": enrollment,
    "purchases": purchase,
    "payments": payment,
    "billings": billing,
    "refunds": refund,
    "webhook_events": webhook_event,
    "lesson_completions": lesson_completion,
    "course_completions": course_completion,
    "product_activity": product_activity,
    "lesson_activity": lesson_activity,
    "drip_progress": drip_progress,
    "certificates": certificate,
    "portal_keys": portal_key,
    "certificate_templates": certificate_template,
    "certificate_designs": certificate_design,
    "events": event_record,
    "handled_events": handled_event,
    "mail": outbox_message,
    "portal_settings": portal_settings,
    "settings_stamps": settings_stamp,
    "settings_changes": settings_change,
    "domain_claims": domain_claim,
    "assessments": assessment,
    "assessment_attempts": assessment_attempt,
    "email_templates": stored_template,
    "checkpoints": checkpoint,
    "coupons": stored_coupon,
    "automation_rules": automation_rule,
}
