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
    AccessGranted,
    CertificateIssued,
    CourseCompleted,
    DomainEvent,
    LessonCompleted,
    MemberCreated,
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
from .domain.progress import Progress
from .domain.settings import SiteSettings
from .errors import (
    AccessDenied,
    ConfigurationError,
    Conflict,
    InvalidToken,
    MailDeliveryError,
    MembershipError,
    NotFound,
    PaymentDeclined,
    StorageError,
    ValidationError,
)
from .plugins.hookspecs import hookimpl
from .plugins.registry import AdapterRegistry
from .portal import Portal, TickReport
from .serialization import structure, unstructure
from .services._unset import UNSET
from .services.certificates import CertificateStatus, Verification

__version__ = "0.1.0"

__all__ = [
    "UNSET",
    "AccessDecision",
    "AccessDenied",
    "AccessGranted",
    "AccessReason",
    "AdapterRegistry",
    "Category",
    "Certificate",
    "CertificateIssued",
    "CertificateStatus",
    "ConfigurationError",
    "Conflict",
    "CourseCompleted",
    "DomainEvent",
    "EmailMessage",
    "Enrollment",
    "EnrollmentSource",
    "EnrollmentStatus",
    "FrozenClock",
    "InvalidToken",
    "Lesson",
    "LessonCompleted",
    "LessonKind",
    "LessonState",
    "MailDeliveryError",
    "MailStatus",
    "Member",
    "MemberCreated",
    "MemberStatus",
    "MembershipError",
    "Money",
    "NotFound",
    "Offer",
    "OfferPurchased",
    "OfferStatus",
    "Outline",
    "OutlineCategory",
    "OutlineLesson",
    "OutboxMessage",
    "PaymentDeclined",
    "PaymentType",
    "Portal",
    "Product",
    "ProductPublished",
    "ProductSort",
    "ProductStatus",
    "ProductUnpublished",
    "Progress",
    "Purchase",
    "PurchaseStatus",
    "RandomIds",
    "SequentialIds",
    "SettingsChanged",
    "SiteSettings",
    "StorageError",
    "SystemClock",
    "TickReport",
    "ValidationError",
    "Verification",
    "__version__",
    "hookimpl",
    "structure",
    "unstructure",
]
