"""membership_core: an embeddable membership-portal back end.

>>> from membership_core import Portal
>>> portal = Portal.open("memory://")
>>> course = portal.catalog.create_product("Python 101")
>>> course.status.value
'draft'
"""

from .adapters.clock import FrozenClock, SystemClock
from .adapters.ids import RandomIds, SequentialIds
from .domain.access import AccessDecision, AccessReason
from .domain.automations import (
    Action,
    AutomationRule,
    Conditions,
    GrantOffer,
    HostAction,
    IssueCertificate,
    SendEmail,
    Trigger,
)
from .domain.billing import Billing, BillingStatus, DunningPolicy
from .domain.catalog import Category, Lesson, LessonKind, Product, ProductSort, ProductStatus
from .domain.certificates import Certificate
from .domain.enrollments import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Purchase,
    PurchaseStatus,
)
from .domain.events import (
    AccessExpired,
    AccessExpiring,
    AccessGranted,
    AccessRevoked,
    AssessmentFailed,
    AssessmentPassed,
    CertificateIssued,
    CertificateRevoked,
    CourseCompleted,
    DomainEvent,
    LessonCompleted,
    LessonCompletionUndone,
    LessonPublished,
    LessonsUnlocked,
    MemberCreated,
    MemberDeleted,
    MemberReactivated,
    MemberSuspended,
    MemberUpdated,
    OfferPurchased,
    ProductPublished,
    ProductUnpublished,
    SettingsChanged,
)
from .domain.mail import EmailMessage, MailStatus, OutboxMessage
from .domain.members import Member, MemberStatus
from .domain.money import Money
from .domain.offers import Offer, OfferStatus, PaymentType
from .domain.outline import LessonState, Outline, OutlineCategory, OutlineLesson
from .domain.pricing import (
    AmountOff,
    BillingPeriod,
    Coupon,
    Forever,
    Free,
    Interval,
    Once,
    OneTime,
    PaymentPlan,
    PercentOff,
    PricingPlan,
    Repeating,
    Subscription,
)
from .domain.progress import Progress
from .domain.settings import SiteSettings
from .domain.windows import AccessWindow, EndAfter, EndNever, EndOn, StartAtPurchase, StartOn
from .errors import (
    AccessDenied,
    ConfigurationError,
    Conflict,
    Contention,
    InvalidToken,
    MailDeliveryError,
    MembershipError,
    NotFound,
    PaymentDeclined,
    RefundFailed,
    StorageError,
    ValidationError,
)
from .hosts import tenant_for_host
from .plugins.hookspecs import hookimpl
from .plugins.registry import AdapterRegistry
from .portal import Portal, TickReport
from .serialization import structure, unstructure
from .services._unset import UNSET
from .services.certificates import CertificateFacts, CertificateStatus, Verification

__version__ = "0.1.0"

__all__ = [
    "AccessDecision",
    "AccessDenied",
    "AccessExpired",
    "AccessExpiring",
    "AccessGranted",
    "AccessReason",
    "AccessRevoked",
    "AccessWindow",
    "Action",
    "AdapterRegistry",
    "AmountOff",
    "AssessmentFailed",
    "AssessmentPassed",
    "AutomationRule",
    "Billing",
    "BillingPeriod",
    "BillingStatus",
    "Category",
    "Certificate",
    "CertificateFacts",
    "CertificateIssued",
    "CertificateRevoked",
    "CertificateStatus",
    "Conditions",
    "ConfigurationError",
    "Conflict",
    "Contention",
    "Coupon",
    "CourseCompleted",
    "DomainEvent",
    "DunningPolicy",
    "EmailMessage",
    "EndAfter",
    "EndNever",
    "EndOn",
    "Enrollment",
    "EnrollmentSource",
    "EnrollmentStatus",
    "Forever",
    "Free",
    "FrozenClock",
    "GrantOffer",
    "HostAction",
    "Interval",
    "InvalidToken",
    "IssueCertificate",
    "Lesson",
    "LessonCompleted",
    "LessonCompletionUndone",
    "LessonKind",
    "LessonPublished",
    "LessonState",
    "LessonsUnlocked",
    "MailDeliveryError",
    "MailStatus",
    "Member",
    "MemberCreated",
    "MemberDeleted",
    "MemberReactivated",
    "MemberStatus",
    "MemberSuspended",
    "MemberUpdated",
    "MembershipError",
    "Money",
    "NotFound",
    "Offer",
    "OfferPurchased",
    "OfferStatus",
    "Once",
    "OneTime",
    "OutboxMessage",
    "Outline",
    "OutlineCategory",
    "OutlineLesson",
    "PaymentDeclined",
    "PaymentPlan",
    "PaymentType",
    "PercentOff",
    "Portal",
    "PricingPlan",
    "Product",
    "ProductPublished",
    "ProductSort",
    "ProductStatus",
    "ProductUnpublished",
    "Progress",
    "Purchase",
    "PurchaseStatus",
    "RandomIds",
    "RefundFailed",
    "Repeating",
    "SendEmail",
    "SequentialIds",
    "SettingsChanged",
    "SiteSettings",
    "StartAtPurchase",
    "StartOn",
    "StorageError",
    "Subscription",
    "SystemClock",
    "TickReport",
    "Trigger",
    "UNSET",
    "ValidationError",
    "Verification",
    "__version__",
    "hookimpl",
    "structure",
    "tenant_for_host",
    "unstructure",
]
