"""The storage port's contract, run against every adapter: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from membership_core.domain.catalog import Product
from membership_core.domain.mail import MailStatus
from membership_core.errors import Conflict, NotFound, StorageError
from membership_core.ports.storage import COLLECTIONS, Storage, UnitOfWork

from . import factories as f

COLLECTION_NAMES = [c.name for c in COLLECTIONS]


def test_every_collection_has_a_builder() -> None:
    assert set(f.BUILDERS) == set(COLLECTION_NAMES)


@pytest.mark.parametrize("name", COLLECTION_NAMES)
def test_records_round_trip_exactly(storage: Storage, name: str) -> None:
    item = f.BUILDERS[name]()
    with storage.unit_of_work("t1") as uow:
        getattr(uow, name).add(item)
        uow.commit()
    with storage.unit_of_work("t1", write=False) as uow:
        assert getattr(uow, name).get(item.id) == item


def test_get_missing_is_none_and_update_missing_is_not_found(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        assert uow.products.get("prod_missing") is None
        with pytest.raises(NotFound):
            uow.products.update(f.product(id="prod_missing"))
        with pytest.raises(NotFound):
            uow.products.delete("prod_missing")


def test_leaving_without_commit_rolls_back(storage: Storage) -> None:
    item = f.product()
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
    with storage.unit_of_work("t1") as uow:
        assert uow.products.get(item.id) is None


def test_exception_rolls_back(storage: Storage) -> None:
    item = f.product()

    def fail() -> None:
        with storage.unit_of_work("t1") as uow:
            uow.products.add(item)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    with storage.unit_of_work("t1") as uow:
        assert uow.products.count() == 0


def test_explicit_rollback_discards_and_commit_persists(storage: Storage) -> None:
    first, second = f.product(), f.product()
    with storage.unit_of_work("t1") as uow:
        uow.products.add(first)
        uow.rollback()
    with storage.unit_of_work("t1") as uow:
        uow.products.add(second)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        assert [p.id for p in uow.products.find()] == [second.id]


def test_update_and_delete(storage: Storage) -> None:
    item = f.product(title="Old")
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        uow.products.update(attrs.evolve(item, title="New"))
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        stored = uow.products.get(item.id)
        assert stored is not None
        assert stored.title == "New"
        uow.products.delete(item.id)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        assert uow.products.get(item.id) is None


def test_duplicate_id_conflicts_and_unit_of_work_stays_usable(storage: Storage) -> None:
    item = f.product()
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
        with pytest.raises(Conflict):
            uow.products.add(item)
        other = f.product()
        uow.products.add(other)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        assert uow.products.count() == 2


def test_unique_keys_are_enforced_per_tenant(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        uow.members.add(f.member(email="ada@example.com"))
        with pytest.raises(Conflict):
            uow.members.add(f.member(email="ADA@example.com "))
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        uow.members.add(f.member(email="ada@example.com"))
        uow.commit()


def test_unique_key_conflict_on_update(storage: Storage) -> None:
    a, b = f.certificate(member_id="m1"), f.certificate(member_id="m2")
    with storage.unit_of_work("t1") as uow:
        uow.certificates.add(a)
        uow.certificates.add(b)
        uow.commit()
    with storage.unit_of_work("t1") as uow, pytest.raises(Conflict):
        uow.certificates.update(attrs.evolve(b, serial=a.serial))


def test_keys_unique_across_portals_are_enforced_between_tenants(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        uow.domain_claims.add(f.domain_claim(id="subdomain", name="acme"))
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        with pytest.raises(Conflict) as caught:
            uow.domain_claims.add(f.domain_claim(id="subdomain", name="acme"))
        assert caught.value.field in ("id", "name")
        # Another kind with the same name is another key; the unit of work stays usable.
        uow.domain_claims.add(f.domain_claim(id="custom_domain", name="acme"))
        uow.domain_claims.add(f.domain_claim(id="subdomain", name="globex"))
        with pytest.raises(Conflict):
            uow.domain_claims.update(f.domain_claim(id="subdomain", name="acme"))
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        assert uow.domain_claims.get("subdomain") == f.domain_claim(id="subdomain", name="globex")
        assert [c.name for c in uow.domain_claims.find(order_by=("name",))] == ["acme", "globex"]
    with storage.unit_of_work("t1") as uow:
        # Reads stay scoped to the portal; its own row can be rewritten freely.
        assert [c.id for c in uow.domain_claims.find()] == ["subdomain"]
        uow.domain_claims.update(f.domain_claim(id="subdomain", name="acme"))
        uow.domain_claims.delete("subdomain")
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        uow.domain_claims.update(f.domain_claim(id="subdomain", name="acme"))  # free now
        uow.commit()


def test_domain_holder_names_the_portal_holding_a_committed_claim(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        uow.domain_claims.add(f.domain_claim(id="subdomain", name="acme"))
        uow.domain_claims.add(f.domain_claim(id="custom_domain", name="learn.acme.com"))
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        uow.domain_claims.add(f.domain_claim(id="subdomain", name="globex"))
        assert storage.domain_holder("subdomain", "globex") is None  # not committed yet
        uow.commit()
    assert storage.domain_holder("subdomain", "acme") == "t1"
    assert storage.domain_holder("custom_domain", "learn.acme.com") == "t1"
    assert storage.domain_holder("subdomain", "globex") == "t2"
    assert storage.domain_holder("custom_domain", "acme") is None  # another kind
    assert storage.domain_holder("subdomain", "initech") is None


def test_null_never_clashes_in_unique_keys(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        uow.purchases.add(f.purchase(idempotency_key=None))
        uow.purchases.add(f.purchase(idempotency_key=None))
        uow.commit()
        assert uow.purchases.count() == 2


def test_tenants_never_see_each_other(storage: Storage) -> None:
    item = f.product()
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
        uow.commit()
    with storage.unit_of_work("t2") as uow:
        assert uow.products.get(item.id) is None
        assert uow.products.find() == []
        assert uow.products.count() == 0
        assert uow.products.find_in("id", [item.id]) == []
        with pytest.raises(NotFound):
            uow.products.update(item)
        with pytest.raises(NotFound):
            uow.products.delete(item.id)
        # the same id may exist in another tenant
        uow.products.add(item)
        uow.commit()


def test_find_filters_orders_and_pages(storage: Storage) -> None:
    titles = ["banana", "Apple", "cherry", "apricot", "Date"]
    items = [
        f.product(title=t, created_at=f.T0 + timedelta(minutes=i)) for i, t in enumerate(titles)
    ]
    with storage.unit_of_work("t1") as uow:
        for item in items:
            uow.products.add(item)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        by_title = [p.title for p in uow.products.find(order_by=["title"])]
        assert by_title == ["Apple", "apricot", "banana", "cherry", "Date"]
        newest = uow.products.find(order_by=["created_at"], descending=True, limit=2)
        assert [p.title for p in newest] == ["Date", "apricot"]
        page = uow.products.find(order_by=["title"], limit=2, offset=2)
        assert [p.title for p in page] == ["banana", "cherry"]
        found = uow.products.find(contains=("title", "AP"), order_by=["title"])
        assert [p.title for p in found] == ["Apple", "apricot"]
        assert uow.products.count({"title": "Apple"}) == 1
        assert uow.products.find({"status": items[0].status}, limit=1)[0].id == items[0].id


def test_contains_treats_like_wildcards_literally(storage: Storage) -> None:
    with storage.unit_of_work("t1") as uow:
        uow.products.add(f.product(title="100% off"))
        uow.products.add(f.product(title="1000 of"))
        uow.products.add(f.product(title="a_b"))
        uow.products.add(f.product(title="axb"))
        uow.products.add(f.product(title="Straße"))
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        assert [p.title for p in uow.products.find(contains=("title", "0%"))] == ["100% off"]
        assert [p.title for p in uow.products.find(contains=("title", "a_b"))] == ["a_b"]
        assert [p.title for p in uow.products.find(contains=("title", "STRAße"))] == ["Straße"]


def test_where_none_matches_missing_values(storage: Storage) -> None:
    sent = f.event_record(dispatched_at=f.T0)
    pending = f.event_record()
    with storage.unit_of_work("t1") as uow:
        uow.events.add(sent)
        uow.events.add(pending)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        assert [e.id for e in uow.events.find({"dispatched_at": None})] == [pending.id]


def test_find_in(storage: Storage) -> None:
    items = [f.lesson(category_id=c) for c in ("c1", "c2", "c3")]
    with storage.unit_of_work("t1") as uow:
        for item in items:
            uow.lessons.add(item)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        found = uow.lessons.find_in("category_id", ["c1", "c3", "nope"])
        assert sorted(x.id for x in found) == sorted([items[0].id, items[2].id])
        assert uow.lessons.find_in("category_id", []) == []


def test_find_due_is_a_range_query_earliest_first(storage: Storage) -> None:
    due_times = [f.T0 + timedelta(minutes=m) for m in (30, 10, 20, 40)]
    messages = [f.outbox_message(next_attempt_at=t) for t in due_times]
    sent = f.outbox_message(next_attempt_at=f.T0, status=MailStatus.SENT)
    with storage.unit_of_work("t1") as uow:
        for message in [*messages, sent]:
            uow.mail.add(message)
        uow.commit()
    with storage.unit_of_work("t1") as uow:
        at = f.T0 + timedelta(minutes=30)
        due = uow.mail.find_due("next_attempt_at", at, {"status": MailStatus.QUEUED})
        assert [m.next_attempt_at for m in due] == sorted(due_times[:3])
        assert len(uow.mail.find_due("next_attempt_at", at, limit=2, claim=True)) == 2
        assert uow.mail.find_due("next_attempt_at", f.T0 - timedelta(seconds=1)) == []
        # after is an exclusive lower bound: the message due exactly at T0+10 is left out
        window = uow.mail.find_due("next_attempt_at", at, after=f.T0 + timedelta(minutes=10))
        assert [m.next_attempt_at for m in window] == [due_times[2], due_times[0]]
        # None is never due
        assert uow.events.find_due("dispatched_at", at) == []
    with storage.unit_of_work("t2") as uow:
        assert uow.mail.find_due("next_attempt_at", f.T0 + timedelta(days=1)) == []


def test_claimed_rows_are_skipped_by_a_second_worker(postgres_url: str) -> None:
    """On PostgreSQL, two workers claiming due work at once never take the same row."""
    from membership_core.adapters.sql import SqlStorage

    storage = SqlStorage(postgres_url)
    try:
        with storage.unit_of_work("t1") as uow:
            for minute in range(4):
                uow.mail.add(f.outbox_message(next_attempt_at=f.T0 + timedelta(minutes=minute)))
            uow.commit()
        at = f.T0 + timedelta(hours=1)
        with storage.unit_of_work("t1") as first, storage.unit_of_work("t1") as second:
            mine = first.mail.find_due("next_attempt_at", at, limit=2, claim=True)
            theirs = second.mail.find_due("next_attempt_at", at, limit=10, claim=True)
        assert len(mine) == 2
        assert len(theirs) == 2
        assert not {m.id for m in mine} & {m.id for m in theirs}
    finally:
        storage.close()


def test_access_facts_equal_the_separate_reads(storage: Storage) -> None:
    from membership_core.ports.storage import read_access_facts

    member, other = f.member(), f.member(email="other@example.com")
    product, elsewhere = f.product(), f.product()
    category = f.category(product_id=product.id)
    lesson = f.lesson(product_id=product.id, category_id=category.id)
    grants = [
        f.enrollment(member_id=member.id, product_id=product.id),
        f.enrollment(member_id=member.id, product_id=product.id, ends_at=f.T0),
        f.enrollment(member_id=member.id, product_id=elsewhere.id),
        f.enrollment(member_id=other.id, product_id=product.id),
    ]
    with storage.unit_of_work("t1") as uow:
        for item in (member, other):
            uow.members.add(item)
        for item in (product, elsewhere):
            uow.products.add(item)
        uow.categories.add(category)
        uow.lessons.add(lesson)
        for grant in grants:
            uow.enrollments.add(grant)
        uow.commit()
    with storage.unit_of_work("t1", write=False) as uow:
        by_product = uow.access_facts(member.id, product_id=product.id)
        assert by_product == read_access_facts(uow, member.id, product_id=product.id)
        assert by_product is not None
        assert by_product.lesson is None
        assert [e.id for e in by_product.enrollments] == sorted(g.id for g in grants[:2])
        by_lesson = uow.access_facts(member.id, lesson_id=lesson.id)
        assert by_lesson == read_access_facts(uow, member.id, lesson_id=lesson.id)
        assert by_lesson is not None
        assert (by_lesson.lesson, by_lesson.product, by_lesson.member) == (lesson, product, member)
        no_grants = uow.access_facts(member.id, product_id=f.product().id)
        assert no_grants is None  # the product does not exist
        quiet = uow.access_facts(other.id, product_id=elsewhere.id)
        assert quiet is not None
        assert quiet.enrollments == ()
        assert uow.access_facts("mem_missing", product_id=product.id) is None
        assert uow.access_facts(member.id, lesson_id="les_missing") is None
    with storage.unit_of_work("t2", write=False) as uow:
        assert uow.access_facts(member.id, product_id=product.id) is None  # another tenant


READ_ONLY_REFUSALS: list[tuple[str, str, Callable[[UnitOfWork, Product], object]]] = [
    ("products", "add", lambda uow, _item: uow.products.add(f.product())),
    ("products", "update", lambda uow, item: uow.products.update(attrs.evolve(item, title="X"))),
    ("products", "delete", lambda uow, item: uow.products.delete(item.id)),
    ("products", "get_for_update", lambda uow, item: uow.products.get_for_update(item.id)),
    (
        "mail",
        "find_due(claim=True)",
        lambda uow, _item: uow.mail.find_due("next_attempt_at", f.T0, claim=True),
    ),
    # refused before the record is looked at: a missing one is no NotFound here
    ("members", "update", lambda uow, _item: uow.members.update(f.member())),
    ("members", "delete", lambda uow, _item: uow.members.delete("mem_missing")),
]


@pytest.mark.parametrize(
    ("collection", "operation", "call"),
    READ_ONLY_REFUSALS,
    ids=[f"{c}.{o}" for c, o, _ in READ_ONLY_REFUSALS],
)
def test_read_only_unit_of_work_refuses_writes_and_locks(
    storage: Storage,
    collection: str,
    operation: str,
    call: Callable[[UnitOfWork, Product], object],
) -> None:
    item = f.product(title="Kept")
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
        uow.commit()
    with storage.unit_of_work("t1", write=False) as uow:
        with pytest.raises(StorageError) as refused:
            call(uow, item)
        assert str(refused.value) == (
            f"{collection}.{operation} refused: the unit of work is read-only "
            "(open it with write=True)"
        )
        # the refusal happens before any statement: the unit of work still reads
        assert uow.products.get(item.id) == item
        uow.commit()  # committing a read-only unit of work is allowed and does nothing
    with storage.unit_of_work("t1", write=False) as uow:
        assert uow.products.find() == [item]


@pytest.mark.parametrize("name", COLLECTION_NAMES)
def test_read_only_unit_of_work_refuses_adds_to_every_collection(
    storage: Storage, name: str
) -> None:
    refused = pytest.raises(StorageError, match=rf"^{name}\.add refused: .* read-only")
    with storage.unit_of_work("t1", write=False) as uow, refused:
        getattr(uow, name).add(f.BUILDERS[name]())
    with storage.unit_of_work("t1") as uow:
        assert getattr(uow, name).count() == 0


def test_read_only_unit_of_work_answers_every_read(storage: Storage) -> None:
    item = f.product()
    message = f.outbox_message(next_attempt_at=f.T0)
    with storage.unit_of_work("t1") as uow:
        uow.products.add(item)
        uow.mail.add(message)
        uow.commit()
    with storage.unit_of_work("t1", write=False) as uow:
        assert uow.products.get(item.id) == item
        assert uow.products.find(order_by=["title"]) == [item]
        assert uow.products.find_in("id", [item.id]) == [item]
        assert uow.products.count() == 1
        assert uow.mail.find_due("next_attempt_at", f.T0) == [message]  # claim=False reads
        assert uow.access_facts("mem_missing", product_id=item.id) is None
        uow.rollback()  # a no-op that leaves the committed rows alone
        assert uow.products.get(item.id) == item
    with storage.unit_of_work("t1", write=False) as uow:
        assert uow.products.count() == 1
