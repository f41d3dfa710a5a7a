"""Assessments: build a lesson's quiz, run attempts, score them. ``portal.assessments``.

A member who may view the lesson starts an attempt (the questions in that
attempt's order, without the answers), submits answers, and learns the score,
whether they passed and what may come next. Passing completes the lesson, as
:meth:`ProgressService.complete_lesson
<membership_core.services.progress.ProgressService.complete_lesson>` would,
in the same transaction: it may open dripped lessons waiting for it
(``AfterAssessment``) and complete the course. Every attempt is kept with its
answers and per-question marks, for analytics.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from .. import _validate as v
from ..domain import assessments as rules
from ..domain.access import AccessReason
from ..domain.assessments import (
    Assessment,
    Attempt,
    AttemptAllowance,
    Choice,
    Question,
    QuestionKind,
    Score,
)
from ..domain.events import AssessmentFailed, AssessmentPassed
from ..errors import AccessDenied, Conflict, NotFound, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Context, Service
from ._unset import UNSET, _Unset
from .access import AccessService
from .progress import ProgressService

__all__ = [
    "AssessmentReport",
    "AssessmentsService",
    "AttemptQuestion",
    "AttemptResult",
    "AttemptView",
    "QuestionReport",
]


@attrs.frozen
class AttemptQuestion:
    """A question as the member sees it in an attempt: no right answers."""

    id: str
    kind: QuestionKind
    prompt: str
    points: int
    choices: tuple[Choice, ...]


@attrs.frozen
class AttemptView:
    """An attempt in progress: its questions in this attempt's order, and its deadline."""

    attempt_id: str
    assessment_id: str
    number: int
    started_at: datetime
    deadline: datetime | None
    questions: tuple[AttemptQuestion, ...]


@attrs.frozen
class QuestionReport:
    """How one question fared across every submitted attempt."""

    question_id: str
    answered: int
    correct: int


@attrs.frozen
class AssessmentReport:
    """An assessment's results across members, for analytics.

    ``passed_members`` counts members with at least one passing attempt;
    ``best_percents`` is each member's best score, by member id.
    """

    assessment_id: str
    attempts: int
    members: int
    passed_members: int
    best_percents: Mapping[str, int]
    questions: tuple[QuestionReport, ...]


@attrs.frozen
class AttemptResult:
    """A submitted attempt: its score, whether it passed, and what may come next."""

    attempt: Attempt
    passed: bool
    score: Score
    #: Whether another attempt may start now (or from ``available_at``).
    next: AttemptAllowance


def _percent(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValidationError("pass_percent", "must be a whole number from 0 to 100")
    return value


def _optional_count(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValidationError("max_attempts", "must be None or a whole number from 1 to 1000")
    return value


def _optional_span(field: str, value: object) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, timedelta) or value <= timedelta(0) or value > timedelta(days=366):
        raise ValidationError(field, "must be None or a positive timedelta of at most a year")
    return value


class AssessmentsService(Service):
    """Quizzes of lessons and the attempts at them."""

    def __init__(self, context: Context, access: AccessService, progress: ProgressService) -> None:
        super().__init__(context)
        self._access = access
        self._progress = progress

    # -- building -----------------------------------------------------------------------

    def create(
        self,
        lesson_id: str,
        questions: Sequence[Question],
        *,
        pass_percent: int = 70,
        max_attempts: int | None = None,
        wait_between: timedelta | None = None,
        time_limit: timedelta | None = None,
        shuffle: bool = True,
    ) -> Assessment:
        """Give a lesson its assessment (one per lesson; a second is a ``Conflict``).

        >>> from membership_core import Portal
        >>> from membership_core.domain.assessments import Question, QuestionKind
        >>> portal = Portal.open("memory://")
        >>> product = portal.catalog.create_product("Python 101")
        >>> module = portal.catalog.add_category(product.id, "Basics")
        >>> lesson = portal.catalog.add_lesson(product.id, module.id, "Quiz")
        >>> quiz = portal.assessments.create(
        ...     lesson.id,
        ...     [Question("q1", QuestionKind.TRUE_FALSE, "Python is a snake", ("true",))],
        ...     pass_percent=100,
        ... )
        >>> quiz.max_points
        1
        """
        v.identifier("lesson_id", lesson_id, "les")
        checked = rules.check_questions(questions)
        settings = self._rules(pass_percent, max_attempts, wait_between, time_limit, shuffle)
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            if uow.assessments.find({"lesson_id": lesson_id}, limit=1):
                raise Conflict(f"lesson {lesson_id!r} has an assessment already", field="lesson_id")
            assessment = Assessment(
                self._ctx.ids.new("asm"),
                lesson.product_id,
                lesson.id,
                checked,
                created_at=now,
                updated_at=now,
                **settings,
            )
            uow.assessments.add(assessment)
            uow.commit()
        return assessment

    def get(self, assessment_id: str) -> Assessment:
        """The assessment, or ``NotFound``."""
        v.identifier("assessment_id", assessment_id, "asm")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.assessments, "assessment", assessment_id, "assessment_id")

    def for_lesson(self, lesson_id: str) -> Assessment | None:
        """The lesson's assessment, ``None`` when it has none (``NotFound``: no such lesson)."""
        v.identifier("lesson_id", lesson_id, "les")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            found = uow.assessments.find({"lesson_id": lesson_id}, limit=1)
            return found[0] if found else None

    def update(
        self,
        assessment_id: str,
        *,
        questions: Sequence[Question] | _Unset = UNSET,
        pass_percent: int | _Unset = UNSET,
        max_attempts: int | _Unset | None = UNSET,
        wait_between: timedelta | _Unset | None = UNSET,
        time_limit: timedelta | _Unset | None = UNSET,
        shuffle: bool | _Unset = UNSET,
    ) -> Assessment:
        """Change some of an assessment; attempts already submitted keep their scores."""
        v.identifier("assessment_id", assessment_id, "asm")
        checked = None if isinstance(questions, _Unset) else rules.check_questions(questions)
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.assessments, "assessment", assessment_id, "assessment_id"
            )
            settings = self._rules(
                current.pass_percent if isinstance(pass_percent, _Unset) else pass_percent,
                current.max_attempts if isinstance(max_attempts, _Unset) else max_attempts,
                current.wait_between if isinstance(wait_between, _Unset) else wait_between,
                current.time_limit if isinstance(time_limit, _Unset) else time_limit,
                current.shuffle if isinstance(shuffle, _Unset) else shuffle,
            )
            updated = attrs.evolve(
                current,
                questions=checked or current.questions,
                updated_at=self._ctx.now(),
                **settings,
            )
            uow.assessments.update(updated)
            uow.commit()
        return updated

    def delete(self, assessment_id: str) -> None:
        """Remove an assessment and its attempts."""
        v.identifier("assessment_id", assessment_id, "asm")
        with self._ctx.uow() as uow:
            self._require_for_update(uow.assessments, "assessment", assessment_id, "assessment_id")
            for attempt in uow.assessment_attempts.find({"assessment_id": assessment_id}):
                uow.assessment_attempts.delete(attempt.id)
            uow.assessments.delete(assessment_id)
            uow.commit()

    @staticmethod
    def _rules(
        pass_percent: object,
        max_attempts: object,
        wait_between: object,
        time_limit: object,
        shuffle: object,
    ) -> dict[str, Any]:
        return {
            "pass_percent": _percent(pass_percent),
            "max_attempts": _optional_count(max_attempts),
            "wait_between": _optional_span("wait_between", wait_between),
            "time_limit": _optional_span("time_limit", time_limit),
            "shuffle": v.boolean("shuffle", shuffle),
        }

    # -- taking -------------------------------------------------------------------------

    def allowance(self, member_id: str, assessment_id: str) -> AttemptAllowance:
        """Whether the member may start an attempt now, and if not why and from when."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("assessment_id", assessment_id, "asm")
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            assessment = self._require(
                uow.assessments, "assessment", assessment_id, "assessment_id"
            )
            return rules.next_attempt(assessment, self._attempts(uow, assessment, member_id), now)

    def start_attempt(self, member_id: str, assessment_id: str) -> AttemptView:
        """Start an attempt, or give back the one in progress (its deadline not passed).

        The member must be allowed to view the lesson (``AccessDenied``); an
        attempt the rules do not allow yet is a ``Conflict`` saying why
        (``allowance`` tells the same without trying).
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("assessment_id", assessment_id, "asm")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            # One member's attempts are numbered one at a time.
            self._require_for_update(uow.members, "member", member_id, "member_id")
            assessment = self._require(
                uow.assessments, "assessment", assessment_id, "assessment_id"
            )
            self._check_access(uow, member_id, assessment, now)
            attempts = self._attempts(uow, assessment, member_id)
            open_ = [a for a in attempts if a.submitted_at is None]
            if open_ and (open_[0].deadline is None or now < open_[0].deadline):
                return self._view(assessment, open_[0])
            # Ran out of time without submitting: each is a late, failed attempt.
            closed = {a.id: self._score(uow, assessment, a, {}, now) for a in open_}
            attempts = [closed.get(a.id, a) for a in attempts]
            allowance = rules.next_attempt(assessment, attempts, now)
            if not allowance.allowed:
                when = (
                    f" before {allowance.available_at.isoformat()}"
                    if allowance.available_at
                    else ""
                )
                raise Conflict(
                    f"no new attempt at {assessment_id!r}{when}: {allowance.reason}",
                    field="assessment_id",
                )
            attempt = Attempt(
                self._ctx.ids.new("att"),
                assessment.id,
                member_id,
                len(attempts) + 1,
                secrets.randbits(32),  # unpredictable, so nobody learns the order ahead
                now,
                None if assessment.time_limit is None else now + assessment.time_limit,
            )
            uow.assessment_attempts.add(attempt)
            uow.commit()
        return self._view(assessment, attempt)

    def submit(self, member_id: str, attempt_id: str, answers: Mapping[str, Any]) -> AttemptResult:
        """Score the member's answers to their attempt (question id → answer).

        An answer is a choice id (single choice), a list of choice ids
        (multiple choice), ``True``/``False`` (true/false) or a string (short
        text). Unknown questions or choices are ``ValidationError``s naming
        them. At or after the deadline the attempt fails as late. Submitting
        an attempt again returns its first result. A pass completes the
        lesson in the same transaction.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("attempt_id", attempt_id, "att")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            self._require_for_update(uow.members, "member", member_id, "member_id")
            attempt = uow.assessment_attempts.get_for_update(attempt_id)
            if attempt is None or attempt.member_id != member_id:
                # Another member's attempt is as unknown as one that does not exist.
                raise NotFound("attempt", attempt_id, field="attempt_id")
            assessment = self._require(
                uow.assessments, "assessment", attempt.assessment_id, "attempt_id"
            )
            if attempt.submitted_at is None:
                clean = rules.clean_answers(assessment, answers)
                attempt = self._score(uow, assessment, attempt, clean, now)
                uow.commit()
            attempts = self._attempts(uow, assessment, member_id)
            allowance = rules.next_attempt(assessment, attempts, now)
        self._committed()
        assert attempt.score is not None
        return AttemptResult(attempt, attempt.passed, attempt.score, allowance)

    def attempts(self, member_id: str, assessment_id: str) -> list[Attempt]:
        """The member's attempts, first to last, with answers and marks."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("assessment_id", assessment_id, "asm")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            assessment = self._require(
                uow.assessments, "assessment", assessment_id, "assessment_id"
            )
            return self._attempts(uow, assessment, member_id)

    def best_score(self, member_id: str, assessment_id: str) -> Score | None:
        """The member's best submitted score (``None`` before any)."""
        scored = [a.score for a in self.attempts(member_id, assessment_id) if a.score is not None]
        return max(scored, key=lambda s: s.points, default=None)

    def report(self, assessment_id: str) -> AssessmentReport:
        """Every submitted attempt summed up: members, passes, best scores, per-question marks."""
        v.identifier("assessment_id", assessment_id, "asm")
        with self._ctx.uow(write=False) as uow:
            assessment = self._require(
                uow.assessments, "assessment", assessment_id, "assessment_id"
            )
            attempts = [
                a
                for a in uow.assessment_attempts.find({"assessment_id": assessment_id})
                if a.score is not None
            ]
        best: dict[str, int] = {}
        passed: set[str] = set()
        answered = dict.fromkeys((q.id for q in assessment.questions), 0)
        correct = dict(answered)
        for attempt in attempts:
            assert attempt.score is not None
            best[attempt.member_id] = max(best.get(attempt.member_id, 0), attempt.score.percent)
            if attempt.passed:
                passed.add(attempt.member_id)
            for result in attempt.score.questions:
                if result.question_id in answered and result.question_id in attempt.answers:
                    answered[result.question_id] += 1
                    correct[result.question_id] += result.correct
        return AssessmentReport(
            assessment_id,
            len(attempts),
            len(best),
            len(passed),
            dict(sorted(best.items())),
            tuple(QuestionReport(q, answered[q], correct[q]) for q in answered),
        )

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _attempts(uow: UnitOfWork, assessment: Assessment, member_id: str) -> list[Attempt]:
        return uow.assessment_attempts.find(
            {"assessment_id": assessment.id, "member_id": member_id}, order_by=("number",)
        )

    def _check_access(
        self, uow: UnitOfWork, member_id: str, assessment: Assessment, now: datetime
    ) -> None:
        decision, _, _ = self._access._decide(uow, member_id, assessment.lesson_id, now)
        if not decision.allowed or decision.reason is AccessReason.PREVIEW:
            reason = "preview only" if decision.allowed else decision.reason.value
            raise AccessDenied(
                f"member may not take the assessment of lesson {assessment.lesson_id!r}: {reason}",
                field="assessment_id",
            )

    def _score(
        self,
        uow: UnitOfWork,
        assessment: Assessment,
        attempt: Attempt,
        answers: dict[str, tuple[str, ...]],
        now: datetime,
    ) -> Attempt:
        late = attempt.deadline is not None and now >= attempt.deadline
        marked = rules.score(assessment, answers)
        attempt = attrs.evolve(attempt, submitted_at=now, answers=answers, score=marked, late=late)
        uow.assessment_attempts.update(attempt)
        event = AssessmentPassed if attempt.passed else AssessmentFailed
        self._record(
            uow,
            event,
            member_id=attempt.member_id,
            product_id=assessment.product_id,
            lesson_id=assessment.lesson_id,
            assessment_id=assessment.id,
            attempt_id=attempt.id,
            percent=marked.percent,
        )
        if attempt.passed:
            self._progress._complete_in(uow, attempt.member_id, assessment.lesson_id, now)
        return attempt

    @staticmethod
    def _view(assessment: Assessment, attempt: Attempt) -> AttemptView:
        order = rules.attempt_order(assessment, attempt.seed)
        by_id = {q.id: q for q in assessment.questions}
        questions = []
        for question_id in order.questions:
            question = by_id[question_id]
            choices = {c.id: c for c in question.choices}
            questions.append(
                AttemptQuestion(
                    question.id,
                    question.kind,
                    question.prompt,
                    question.points,
                    tuple(choices[c] for c in order.choices[question_id]),
                )
            )
        return AttemptView(
            attempt.id,
            assessment.id,
            attempt.number,
            attempt.started_at,
            attempt.deadline,
            tuple(questions),
        )
