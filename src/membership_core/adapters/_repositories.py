"""The repository attributes every unit of work has, declared once for both adapters."""

from __future__ import annotations

from ..domain.catalog import Category, Lesson, Product
from ..domain.certificates import Certificate
from ..domain.enrollments import Enrollment, Purchase
from ..domain.events import EventRecord, HandledEvent
from ..domain.mail import OutboxMessage
from ..domain.members import Member
from ..domain.offers import Offer
from ..domain.progress import CourseCompletion, LessonCompletion
from ..domain.settings import SiteSettings
from ..ports.storage import Repository


class Repositories:
    """Type declarations only; adapters set one repository per collection."""

    tenant: str
    products: Repository[Product]
    categories: Repository[Category]
    lessons: Repository[Lesson]
    offers: Repository[Offer]
    members: Repository[Member]
    enrollments: Repository[Enrollment]
    purchases: Repository[Purchase]
    lesson_completions: Repository[LessonCompletion]
    course_completions: Repository[CourseCompletion]
    certificates: Repository[Certificate]
    events: Repository[EventRecord]
    handled_events: Repository[HandledEvent]
    mail: Repository[OutboxMessage]
    settings: Repository[SiteSettings]
