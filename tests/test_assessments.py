"""Assessments: scoring every question kind, attempt rules at their edges, and what a pass opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core import AccessDenied, AccessReason, Conflict, NotFound, ValidationError
from membership_core.domain.assessments import (
    Assessment,
    Attempt,
    Choice,
    MatchMode,
    Question,
    QuestionKind,
    attempt_order,
    check_questions,
    clean_answers,
    next_attempt,
    score,
)
from membership_core.domain.drip import AfterAssessment, DripSettings, FromAccessGrant
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

SINGLE = Question(
    "capital",
    QuestionKind.SINGLE_CHOICE,
    "The capital of France?",
    ("paris",),
    (Choice("paris", "Paris"), Choice("lyon", "Lyon"), Choice("nice", "Nice")),
    points=2,
)
MULTIPLE = Question(
    "primes",
    QuestionKind.MULTIPLE_CHOICE,
    "Which are prime?",
    ("two", "three"),
    (Choice("two", "2"), Choice("three", "3"), Choice("four", "4")),
    points=3,
)
TRUE_FALSE = Question("wet", QuestionKind.TRUE_FALSE, "Water is wet", ("true",))
EXACT = Question(
    "symbol", QuestionKind.SHORT_TEXT, "Chemical symbol of gold", ("Au",), match=MatchMode.EXACT
)
NORMALIZED = Question("author", QuestionKind.SHORT_TEXT, "Who wrote Candide?", ("Voltaire",))
QUESTIONS = (SINGLE, MULTIPLE, TRUE_FALSE, EXACT, NORMALIZED)  # 2 + 3 + 1 + 1 + 1 = 8 points


def _quiz(**changes: object) -> Assessment:
    values: dict[str, object] = {
        "id": "asm_1",
        "product_id": "prod_1",
        "lesson_id": "les_1",
        "questions": QUESTIONS,
        "pass_percent": 75,
        "max_attempts": None,
        "wait_between": None,
        "time_limit": None,
        "shuffle": True,
        "created_at": T0,
        "updated_at": T0,
    }
    return Assessment(**(values | changes))


def _marks(answers: dict[str, object]) -> dict[str, bool]:
    result = score(_quiz(), clean_answers(_quiz(), answers))
    return {r.question_id: r.correct for r in result.questions}


# -- scoring ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "answer", "correct"),
    [
        ("capital", "paris", True),
        ("capital", "lyon", False),
        ("primes", ["three", "two"], True),
        ("primes", ["two"], False),  # all or nothing
        ("primes", ["two", "three", "four"], False),
        ("wet", True, True),
        ("wet", "false", False),
        ("symbol", " Au ", True),
        ("symbol", "au", False),  # exact: case counts
        ("author", "  voltaire!", True),  # normalized: case, spaces, punctuation
        ("author", "Rousseau", False),
    ],
)
def test_every_question_kind_is_scored(question: str, answer: object, correct: bool) -> None:
    assert _marks({question: answer})[question] is correct


def test_unanswered_questions_score_nothing_and_the_pass_mark_is_exact() -> None:
    quiz = _quiz(pass_percent=75)
    six = clean_answers(quiz, {"capital": "paris", "primes": ["two", "three"], "wet": True})
    result = score(quiz, six)
    assert (result.points, result.max_points, result.percent, result.passed) == (6, 8, 75, True)
    five = clean_answers(quiz, {"primes": ["two", "three"], "wet": True, "symbol": "Au"})
    assert score(quiz, five).points == 5
    assert not score(quiz, five).passed  # 62.5 %


@given(st.integers(0, 100), st.lists(st.integers(1, 9), min_size=1, max_size=12), st.data())
def test_passing_is_exactly_points_over_the_mark(
    mark: int, points: list[int], data: st.DataObject
) -> None:
    questions = tuple(
        Question(f"q{i}", QuestionKind.TRUE_FALSE, "?", ("true",), points=p)
        for i, p in enumerate(points)
    )
    quiz = _quiz(questions=questions, pass_percent=mark)
    right = data.draw(st.sets(st.sampled_from([q.id for q in questions])))
    result = score(quiz, dict.fromkeys(right, ("true",)))
    earned = sum(p for i, p in enumerate(points) if f"q{i}" in right)
    assert result.points == earned
    assert result.passed == (earned * 100 >= mark * sum(points))
    assert result.percent == earned * 100 // sum(points)


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"nope": "x"}, "answers"),
        ({"capital": "rome"}, "answers['capital']"),
        ({"capital": ["paris", "lyon"]}, "answers['capital']"),
        ({"primes": ["two", "two"]}, "answers['primes']"),
        ({"wet": "maybe"}, "answers['wet']"),
        ({"symbol": 3}, "answers['symbol']"),
        (["capital"], "answers"),
    ],
)
def test_bad_answers_name_the_question(answers: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        clean_answers(_quiz(), answers)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("questions", "field"),
    [
        ([], "questions"),
        ([SINGLE, SINGLE], "questions[1].id"),
        ([Question("q", QuestionKind.SINGLE_CHOICE, "?", ("a",))], "questions[0].choices"),
        (
            [Question("q", QuestionKind.SINGLE_CHOICE, "?", ("z",), SINGLE.choices)],
            "questions[0].correct",
        ),
        (
            [Question("q", QuestionKind.SINGLE_CHOICE, "?", ("paris", "lyon"), SINGLE.choices)],
            "questions[0].correct",
        ),
        ([Question("q", QuestionKind.TRUE_FALSE, "?", ("yes",))], "questions[0].correct"),
        ([Question("q", QuestionKind.TRUE_FALSE, "?", ("true",), points=0)], "questions[0].points"),
        ([Question("q", QuestionKind.SHORT_TEXT, " ", ("a",))], "questions[0].prompt"),
        (["not a question"], "questions[0]"),
    ],
)
def test_bad_questions_name_the_field(questions: list[object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_questions(questions)
    assert info.value.field == field


def test_an_attempts_order_is_reproducible_from_its_seed() -> None:
    quiz = _quiz()
    orders = [attempt_order(quiz, seed) for seed in range(20)]
    assert attempt_order(quiz, 7) == attempt_order(quiz, 7)
    assert len({o.questions for o in orders}) > 1
    assert all(sorted(o.questions) == sorted(q.id for q in QUESTIONS) for o in orders)
    fixed = attempt_order(_quiz(shuffle=False), 7)
    assert fixed.questions == tuple(q.id for q in QUESTIONS)
    assert fixed.choices["capital"] == ("paris", "lyon", "nice")


def _attempt(number: int, submitted: datetime | None, passed: bool = False) -> Attempt:
    quiz = _quiz()
    answers = {"capital": ("paris",)} if not passed else {q.id: q.correct for q in QUESTIONS}
    return Attempt(
        f"att_{number}",
        quiz.id,
        "mem_1",
        number,
        number,
        T0,
        None,
        submitted,
        answers,
        score(quiz, answers) if submitted else None,
    )


def test_waits_and_attempt_limits_at_their_exact_edges() -> None:
    quiz = _quiz(max_attempts=2, wait_between=timedelta(hours=1))
    failed = [_attempt(1, T0)]
    early = next_attempt(quiz, failed, T0 + timedelta(hours=1) - timedelta(microseconds=1))
    assert (early.allowed, early.reason, early.available_at) == (
        False,
        "wait",
        T0 + timedelta(hours=1),
    )
    assert next_attempt(quiz, failed, T0 + timedelta(hours=1)).allowed
    two = [*failed, _attempt(2, T0 + timedelta(hours=2))]
    assert next_attempt(quiz, two, T0 + timedelta(days=9)).reason == "no attempts left"
    assert next_attempt(quiz, [_attempt(1, T0, passed=True)], T0).reason == "passed"


# -- the service -----------------------------------------------------------------------


def _course_with_quiz(portal: TestPortal, **options: object) -> tuple[Course, str]:
    course = build_course(portal, lessons=2)
    quiz = portal.assessments.create(course.lessons[0].id, list(QUESTIONS), **options)
    return course, quiz.id


ALL_RIGHT = {
    "capital": "paris",
    "primes": ["two", "three"],
    "wet": True,
    "symbol": "Au",
    "author": "Voltaire",
}


def test_a_pass_completes_the_lesson_and_the_course(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal)
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[1].id)
    view = portal.assessments.start_attempt(member, quiz)
    assert sorted(q.id for q in view.questions) == sorted(q.id for q in QUESTIONS)
    assert "correct" not in repr(view)  # the right answers never reach the member
    assert portal.assessments.start_attempt(member, quiz) == view  # the same, not a new one
    result = portal.assessments.submit(member, view.attempt_id, ALL_RIGHT)
    assert (result.passed, result.score.percent) == (True, 100)
    assert result.next.reason == "passed"
    assert portal.progress.is_completed(member, course.product.id)
    assert len(portal.certificates.for_member(member)) == 1
    again = portal.assessments.submit(member, view.attempt_id, {})
    assert again.attempt == result.attempt  # submitting twice gives the first result
    with pytest.raises(Conflict):
        portal.assessments.start_attempt(member, quiz)


def test_failing_waits_then_runs_out_of_attempts(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal, max_attempts=2, wait_between=timedelta(hours=1))
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    first = portal.assessments.start_attempt(member, quiz)
    failed = portal.assessments.submit(member, first.attempt_id, {"capital": "paris"})
    assert not failed.passed
    assert failed.next.available_at == portal.clock.now() + timedelta(hours=1)
    assert not portal.progress.is_completed(member, course.product.id)
    with pytest.raises(Conflict):
        portal.assessments.start_attempt(member, quiz)
    portal.clock.advance(hours=1)
    assert portal.assessments.allowance(member, quiz).allowed
    second = portal.assessments.start_attempt(member, quiz)
    assert second.number == 2
    portal.assessments.submit(member, second.attempt_id, {})
    assert portal.assessments.allowance(member, quiz).reason == "no attempts left"
    attempts = portal.assessments.attempts(member, quiz)
    assert [a.score.points for a in attempts if a.score] == [2, 0]
    best = portal.assessments.best_score(member, quiz)
    assert best is not None
    assert best.points == 2


def test_a_time_limit_fails_late_submissions_from_the_exact_deadline(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal, time_limit=timedelta(minutes=10))
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    view = portal.assessments.start_attempt(member, quiz)
    assert view.deadline == portal.clock.now() + timedelta(minutes=10)
    portal.clock.advance(minutes=10)
    late = portal.assessments.submit(member, view.attempt_id, ALL_RIGHT)
    assert late.score.percent == 100
    assert not late.passed
    assert late.attempt.late
    # An attempt left open past its deadline is closed as late when the next starts.
    second = portal.assessments.start_attempt(member, quiz)
    portal.clock.advance(minutes=11)
    third = portal.assessments.start_attempt(member, quiz)
    assert third.number == 3
    (closed,) = [a for a in portal.assessments.attempts(member, quiz) if a.id == second.attempt_id]
    assert closed.late
    assert closed.submitted_at == portal.clock.now()


def test_only_members_with_access_take_it_and_only_their_own_attempts(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal)
    outsider = portal.members.invite("eve@example.com")
    with pytest.raises(AccessDenied) as denied:
        portal.assessments.start_attempt(outsider.id, quiz)
    assert AccessReason.NOT_ENROLLED.value in str(denied.value)
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    view = portal.assessments.start_attempt(member, quiz)
    with pytest.raises(NotFound):
        portal.assessments.submit(outsider.id, view.attempt_id, ALL_RIGHT)
    with pytest.raises(ValidationError) as bad:
        portal.assessments.submit(member, view.attempt_id, {"capital": "rome"})
    assert bad.value.field == "answers['capital']"
    assert portal.assessments.attempts(member, quiz)[0].submitted_at is None  # nothing kept


def test_a_pass_opens_lessons_that_wait_for_it(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal)
    product = course.product.id
    portal.drip.configure(product, DripSettings(FromAccessGrant()))
    portal.drip.set_rules(product, course.lessons[1].id, [AfterAssessment(quiz)])
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    assert portal.access.can_view(member, course.lessons[1].id).reason is AccessReason.LOCKED
    view = portal.assessments.start_attempt(member, quiz)
    portal.assessments.submit(member, view.attempt_id, ALL_RIGHT)
    assert portal.access.can_view(member, course.lessons[1].id).allowed


def test_building_validates_and_writes_nothing_on_failure(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    lesson = course.lessons[0].id
    for options, field in [
        ({"pass_percent": 101}, "pass_percent"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"wait_between": timedelta(0)}, "wait_between"),
        ({"time_limit": 60}, "time_limit"),
        ({"shuffle": "yes"}, "shuffle"),
    ]:
        with pytest.raises(ValidationError) as info:
            portal.assessments.create(lesson, [TRUE_FALSE], **options)
        assert info.value.field == field
    assert portal.assessments.for_lesson(lesson) is None
    with pytest.raises(NotFound):
        portal.assessments.create("les_missing", [TRUE_FALSE])
    quiz = portal.assessments.create(lesson, [TRUE_FALSE], pass_percent=100)
    with pytest.raises(Conflict):
        portal.assessments.create(lesson, [TRUE_FALSE])
    changed = portal.assessments.update(quiz.id, questions=[TRUE_FALSE, EXACT], max_attempts=3)
    assert (changed.max_points, changed.max_attempts, changed.pass_percent) == (2, 3, 100)
    assert portal.assessments.for_lesson(lesson) == changed
    portal.assessments.delete(quiz.id)
    with pytest.raises(NotFound):
        portal.assessments.get(quiz.id)


def test_the_report_sums_up_every_members_attempts(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course, quiz = _course_with_quiz(portal)
    ada = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    bob = portal.checkout.purchase(course.offer.id, email="bob@example.com").member_id
    for member, answers in ((ada, {"capital": "lyon"}), (ada, ALL_RIGHT), (bob, {"wet": True})):
        attempt = portal.assessments.start_attempt(member, quiz)
        portal.assessments.submit(member, attempt.attempt_id, answers)
    portal.assessments.start_attempt(bob, quiz)  # in progress: not counted
    report = portal.assessments.report(quiz)
    assert (report.attempts, report.members, report.passed_members) == (3, 2, 1)
    assert report.best_percents == {ada: 100, bob: 12}
    by_question = {q.question_id: (q.answered, q.correct) for q in report.questions}
    assert by_question == {
        "capital": (2, 1),
        "primes": (1, 1),
        "wet": (2, 2),
        "symbol": (1, 1),
        "author": (1, 1),
    }
