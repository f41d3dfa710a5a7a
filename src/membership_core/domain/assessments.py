"""Assessments: scored quizzes attached to lessons. Pure: values and the rules that score them.

A :class:`Question` is single choice, multiple choice, true/false or short
text, worth some points. :func:`score` marks a set of answers; a member
passes with at least ``pass_percent`` of the points (integer arithmetic, no
rounding surprises). :func:`attempt_order` shuffles questions and choices
from a seed, so an attempt shows the same order every time it is looked at.
:func:`next_attempt` says whether another attempt may start, and when.
"""

from __future__ import annotations

import enum
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from ..errors import ValidationError

__all__ = [
    "Assessment",
    "Attempt",
    "AttemptAllowance",
    "AttemptOrder",
    "Choice",
    "MatchMode",
    "Question",
    "QuestionKind",
    "QuestionResult",
    "Score",
    "attempt_order",
    "check_questions",
    "clean_answers",
    "next_attempt",
    "normalize_answer",
    "score",
]

#: How many questions and choices an assessment may have.
MAX_QUESTIONS = 200
MAX_CHOICES = 20


class QuestionKind(enum.Enum):
    """What kind of answer a question takes."""

    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    TRUE_FALSE = "true_false"
    SHORT_TEXT = "short_text"


class MatchMode(enum.Enum):
    """How a short-text answer is compared with the accepted ones."""

    #: The same characters, spaces at the ends aside.
    EXACT = "exact"
    #: Also ignoring case, accents, punctuation and repeated spaces.
    NORMALIZED = "normalized"


_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """``text`` as :attr:`MatchMode.NORMALIZED` compares it.

    >>> normalize_answer("  Élan   Vital! ")
    'elan vital'
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", _PUNCTUATION.sub("", bare)).strip()


@attrs.frozen
class Choice:
    """One option of a choice question."""

    id: str
    text: str


@attrs.frozen
class Question:
    """One question. ``correct`` holds the right choice ids, ``("true",)`` or
    ``("false",)`` for true/false, or the accepted answers of a short-text one."""

    id: str
    kind: QuestionKind
    prompt: str
    correct: tuple[str, ...]
    choices: tuple[Choice, ...] = ()
    points: int = 1
    match: MatchMode = MatchMode.NORMALIZED


@attrs.frozen
class Assessment:
    """The quiz of a lesson, and the rules of its attempts.

    ``max_attempts`` ``None`` allows any number; ``wait_between`` is the pause
    after a failed attempt before the next may start; ``time_limit`` bounds an
    attempt from its start (a late submission fails).
    """

    id: str
    product_id: str
    lesson_id: str
    questions: tuple[Question, ...]
    pass_percent: int
    max_attempts: int | None
    wait_between: timedelta | None
    time_limit: timedelta | None
    shuffle: bool
    created_at: datetime
    updated_at: datetime

    @property
    def max_points(self) -> int:
        """The points of every question together."""
        return sum(q.points for q in self.questions)


@attrs.frozen
class QuestionResult:
    """How one question was answered."""

    question_id: str
    correct: bool
    points: int


@attrs.frozen
class Score:
    """What a set of answers is worth. ``percent`` is rounded down, for showing;
    ``passed`` is decided on the exact points."""

    points: int
    max_points: int
    percent: int
    passed: bool
    questions: tuple[QuestionResult, ...]


@attrs.frozen
class Attempt:
    """One member's attempt at an assessment: started, then submitted and scored."""

    id: str
    assessment_id: str
    member_id: str
    number: int
    seed: int
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None = None
    answers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    score: Score | None = None
    #: Submitted after the deadline: failed, whatever the answers.
    late: bool = False

    @property
    def passed(self) -> bool:
        """Submitted in time with a passing score."""
        return self.score is not None and self.score.passed and not self.late


@attrs.frozen
class AttemptOrder:
    """The order one attempt shows: question ids, and each question's choice ids."""

    questions: tuple[str, ...]
    choices: Mapping[str, tuple[str, ...]]


@attrs.frozen
class AttemptAllowance:
    """Whether a new attempt may start now; if not, why and (when it will) from when."""

    allowed: bool
    reason: str | None = None
    available_at: datetime | None = None


def _answer_tuple(field: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, Sequence) and all(isinstance(x, str) for x in value):
        return tuple(value)
    raise ValidationError(field, "must be a string, true/false, or a list of choice ids")


def clean_answers(assessment: Assessment, answers: object) -> dict[str, tuple[str, ...]]:
    """``answers`` (question id → answer) checked against ``assessment``.

    Unknown question ids and unknown choice ids are errors naming them; a
    question left out is simply unanswered.
    """
    if not isinstance(answers, Mapping):
        raise ValidationError("answers", "must map question ids to answers")
    by_id = {q.id: q for q in assessment.questions}
    clean: dict[str, tuple[str, ...]] = {}
    for key, value in answers.items():
        field = f"answers[{key!r}]"
        question = by_id.get(key) if isinstance(key, str) else None
        if question is None:
            raise ValidationError("answers", f"{key!r} is not a question of this assessment")
        given = _answer_tuple(field, value)
        if question.kind is QuestionKind.SHORT_TEXT:
            if len(given) != 1 or len(given[0]) > 1000:
                raise ValidationError(field, "must be one answer of at most 1000 characters")
        elif question.kind is QuestionKind.TRUE_FALSE:
            if given not in (("true",), ("false",)):
                raise ValidationError(field, "must be true or false")
        else:
            known = {c.id for c in question.choices}
            stray = [g for g in given if g not in known]
            if stray:
                raise ValidationError(field, f"{stray[0]!r} is not a choice of this question")
            if len(set(given)) != len(given):
                raise ValidationError(field, "names a choice twice")
            if question.kind is QuestionKind.SINGLE_CHOICE and len(given) != 1:
                raise ValidationError(field, "must be exactly one choice")
        clean[key] = given
    return clean


def _is_correct(question: Question, given: tuple[str, ...] | None) -> bool:
    if not given:
        return False
    if question.kind is QuestionKind.SHORT_TEXT:
        if question.match is MatchMode.EXACT:
            return given[0].strip() in {c.strip() for c in question.correct}
        return normalize_answer(given[0]) in {normalize_answer(c) for c in question.correct}
    # Multiple choice is all or nothing: every right choice and no wrong one.
    return set(given) == set(question.correct)


def score(assessment: Assessment, answers: Mapping[str, tuple[str, ...]]) -> Score:
    """Mark ``answers`` (from :func:`clean_answers`).

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> q = Question("q1", QuestionKind.TRUE_FALSE, "Water is wet", ("true",), points=2)
    >>> quiz = Assessment("asm_1", "prod_1", "les_1", (q,), 100, None, None, None, False, t, t)
    >>> score(quiz, {"q1": ("true",)}).passed
    True
    """
    results = tuple(
        QuestionResult(q.id, ok, q.points if ok else 0)
        for q in assessment.questions
        for ok in (_is_correct(q, answers.get(q.id)),)
    )
    points = sum(r.points for r in results)
    maximum = assessment.max_points
    return Score(
        points,
        maximum,
        points * 100 // maximum,
        points * 100 >= assessment.pass_percent * maximum,
        results,
    )


def attempt_order(assessment: Assessment, seed: int) -> AttemptOrder:
    """The order of questions and choices for the attempt with ``seed``.

    The same seed gives the same order, so an attempt looks the same each time
    it is shown; without ``shuffle`` it is the order the admin wrote.
    """
    questions = [q.id for q in assessment.questions]
    choices = {q.id: [c.id for c in q.choices] for q in assessment.questions}
    if assessment.shuffle:
        rng = random.Random(seed)  # an order to show, not a secret: seeded on purpose
        rng.shuffle(questions)
        for ids in choices.values():
            rng.shuffle(ids)
    return AttemptOrder(tuple(questions), {q: tuple(ids) for q, ids in choices.items()})


def next_attempt(
    assessment: Assessment, attempts: Sequence[Attempt], now: datetime
) -> AttemptAllowance:
    """Whether the member may start another attempt at ``now``, given their ``attempts``."""
    submitted = [a for a in attempts if a.submitted_at is not None]
    if any(a.passed for a in submitted):
        return AttemptAllowance(False, "passed")
    if assessment.max_attempts is not None and len(attempts) >= assessment.max_attempts:
        return AttemptAllowance(False, "no attempts left")
    if assessment.wait_between is not None and submitted:
        last = max(a.submitted_at for a in submitted if a.submitted_at is not None)
        opens = last + assessment.wait_between
        if now < opens:
            return AttemptAllowance(False, "wait", opens)
    return AttemptAllowance(True)


def check_questions(questions: object) -> tuple[Question, ...]:
    """Validate an assessment's questions; errors name ``questions[i].field``."""
    if isinstance(questions, (str, bytes)) or not isinstance(questions, Sequence):
        raise ValidationError("questions", "must be a list of Question")
    if not 1 <= len(questions) <= MAX_QUESTIONS:
        raise ValidationError("questions", f"must have 1 to {MAX_QUESTIONS} questions")
    seen: set[str] = set()
    for index, question in enumerate(questions):
        where = f"questions[{index}]"
        if not isinstance(question, Question):
            raise ValidationError(where, f"must be a Question, not {type(question).__name__}")
        _check_question(where, question)
        if question.id in seen:
            raise ValidationError(f"{where}.id", f"{question.id!r} is used twice")
        seen.add(question.id)
    return tuple(questions)


def _text(field: str, value: Any, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationError(field, f"must be a non-empty string of at most {limit} characters")


def _check_question(where: str, q: Question) -> None:
    _text(f"{where}.id", q.id, 100)
    _text(f"{where}.prompt", q.prompt, 5000)
    if not isinstance(q.kind, QuestionKind):
        raise ValidationError(f"{where}.kind", "must be a QuestionKind")
    if isinstance(q.points, bool) or not isinstance(q.points, int) or not 1 <= q.points <= 1000:
        raise ValidationError(f"{where}.points", "must be a whole number from 1 to 1000")
    if not isinstance(q.correct, tuple) or not q.correct:
        raise ValidationError(f"{where}.correct", "must name at least one right answer")
    if q.kind in (QuestionKind.SHORT_TEXT, QuestionKind.TRUE_FALSE):
        if q.choices:
            raise ValidationError(f"{where}.choices", f"a {q.kind.value} question has none")
        if q.kind is QuestionKind.TRUE_FALSE and q.correct not in (("true",), ("false",)):
            raise ValidationError(f"{where}.correct", 'must be ("true",) or ("false",)')
        for i, accepted in enumerate(q.correct):
            _text(f"{where}.correct[{i}]", accepted, 1000)
        return
    if not 2 <= len(q.choices) <= MAX_CHOICES:
        raise ValidationError(f"{where}.choices", f"must have 2 to {MAX_CHOICES} choices")
    ids = [c.id for c in q.choices]
    for i, choice in enumerate(q.choices):
        _text(f"{where}.choices[{i}].id", choice.id, 100)
        _text(f"{where}.choices[{i}].text", choice.text, 2000)
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{where}.choices", "two choices have the same id")
    stray = [c for c in q.correct if c not in ids]
    if stray:
        raise ValidationError(f"{where}.correct", f"{stray[0]!r} is not one of its choices")
    if len(set(q.correct)) != len(q.correct):
        raise ValidationError(f"{where}.correct", "names a choice twice")
    if q.kind is QuestionKind.SINGLE_CHOICE and len(q.correct) != 1:
        raise ValidationError(f"{where}.correct", "a single-choice question has one right choice")
