"""catalog_search: product search by title on SQLite, against hand-written SQL.

Ours is ``portal.catalog.search_products(query, limit=50)`` on a ``Portal`` over an
SQLite file. The baseline is the query one would write by hand against the same
file through a raw ``sqlite3`` connection: same table, same tenant filter, a
``lower(title) LIKE '%q%'`` match, the same ORDER BY and LIMIT, rows turned into
tuples. Titles are ASCII, so SQLite's ``lower()`` and the adapter's Python-side
folding agree and both sides must return the same ids, which is checked.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _registry import Result, benchmark
from _timing import Pair, interleaved, summary
from membership_core import Portal, Product, ProductStatus, RandomIds

NAME = "catalog_search"
TARGET_RATIO = 2.0
LIMIT = 50

FULL_PRODUCTS = 10_000
FULL_REPETITIONS = 25
QUICK_PRODUCTS = 1_000
QUICK_REPETITIONS = 5

#: Label -> query text. A mix of selectivities and cases.
QUERIES: dict[str, str] = {
    "very_common": "e",  # in nearly every title: sorts almost the whole table
    "common": "python",  # about one title in sixteen
    "rare": "quokka",  # a handful of titles
    "no_match": "zzqx",
    "upper_case": "WATERCOLOUR",  # matches lowercase-stored text case-insensitively
    "like_metachar": "100%",  # '%' must be matched literally on both sides
}

_ADJECTIVES = (
    "Advanced",
    "Practical",
    "Modern",
    "Complete",
    "Essential",
    "Hands-on",
    "Beginner's",
    "Intermediate",
    "Creative",
    "Applied",
    "Professional",
    "Quick",
)
_TOPICS = (
    "Python",
    "Watercolour",
    "Marketing",
    "Yoga",
    "Photography",
    "Bookkeeping",
    "Guitar",
    "Sourdough",
    "Spanish",
    "Negotiation",
    "Data Analysis",
    "Woodworking",
    "Copywriting",
    "Pilates",
    "Calligraphy",
    "Public Speaking",
)
_FORMS = (
    "Course",
    "Masterclass",
    "Bootcamp",
    "Workshop",
    "Programme",
    "Crash Course",
    "Academy",
    "Club",
)

_BASELINE_SQL = (
    "SELECT tenant, id, title, description, image_url, status, created_at, updated_at"
    " FROM mc_products"
    " WHERE tenant = ? AND lower(title) LIKE ? ESCAPE '\\'"
    " ORDER BY lower(title), id"
    " LIMIT ? OFFSET ?"
)


def _titles(count: int, rng: random.Random) -> list[str]:
    titles = []
    for number in range(count):
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_TOPICS)} {rng.choice(_FORMS)}"
        if number % 997 == 0:
            title += " with a Quokka"
        elif number % 50 == 0:
            title += ": 100% Online"
        elif number % 7 == 0:
            title += f" {2015 + number % 11}"
        titles.append(title)
    return titles


def _products(count: int) -> list[Product]:
    rng = random.Random(20_240_601)
    ids = RandomIds()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    products = []
    for number, title in enumerate(_titles(count, rng)):
        created = start + timedelta(minutes=number)
        products.append(
            Product(
                ids.new("prod"),
                title,
                f"{title}: a self-paced programme in {rng.randint(4, 40)} lessons, "
                "with exercises, downloadable notes and a certificate of completion.",
                None if number % 3 else f"https://img.example.com/products/{number}.png",
                ProductStatus.PUBLISHED if number % 4 else ProductStatus.DRAFT,
                created,
                created + timedelta(days=number % 30),
            )
        )
    return products


def _populate(portal: Portal, products: list[Product]) -> None:
    with portal.storage.unit_of_work(portal.tenant) as uow:
        for product in products:
            uow.products.add(product)
        uow.commit()


def _like_pattern(query: str) -> str:
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _baseline_search(
    connection: sqlite3.Connection, tenant: str
) -> Callable[[str], list[tuple[Any, ...]]]:
    def search(query: str) -> list[tuple[Any, ...]]:
        params = (tenant, _like_pattern(query.strip()), LIMIT, 0)
        return [tuple(row) for row in connection.execute(_BASELINE_SQL, params).fetchall()]

    return search


def _check_same_rows(
    portal: Portal, baseline: Callable[[str], list[tuple[Any, ...]]]
) -> dict[str, int]:
    """Run every query once on both sides (a warm-up too); return the row counts."""
    counts = {}
    for label, query in QUERIES.items():
        ours = [product.id for product in portal.catalog.search_products(query, limit=LIMIT)]
        theirs = [row[1] for row in baseline(query)]
        if ours != theirs:
            raise RuntimeError(
                f"{NAME}: query {query!r} returned different ids: "
                f"ours {ours[:5]}... ({len(ours)}), baseline {theirs[:5]}... ({len(theirs)})"
            )
        counts[label] = len(ours)
    if counts["no_match"] != 0 or counts["very_common"] != LIMIT or counts["rare"] == 0:
        raise RuntimeError(f"{NAME}: the data set does not give the intended mix: {counts}")
    return counts


def _per_search(rounds: list[float], searches: int) -> float:
    return statistics.median(rounds) / searches * 1000.0


@benchmark(NAME)
def catalog_search(quick: bool) -> Result:
    """Title search over products on SQLite (portal.catalog.search_products vs raw SQL)."""
    size = QUICK_PRODUCTS if quick else FULL_PRODUCTS
    repetitions = QUICK_REPETITIONS if quick else FULL_REPETITIONS
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        path = Path(folder) / "catalog.db"
        portal = Portal.open(f"sqlite:///{path}", load_entrypoints=False)
        try:
            _populate(portal, _products(size))
            connection = sqlite3.connect(path)
            try:
                baseline = _baseline_search(connection, portal.tenant)
                counts = _check_same_rows(portal, baseline)

                def pair(query: str) -> Pair:
                    return (
                        lambda: portal.catalog.search_products(query, limit=LIMIT),
                        lambda: baseline(query),
                    )

                samples = interleaved(
                    {label: pair(query) for label, query in QUERIES.items()}, repetitions
                )
            finally:
                connection.close()
        finally:
            portal.close()

    # One round = every query once; the headline is the median round over the mix, per search.
    ours_rounds = [sum(run) for run in zip(*(s[0] for s in samples.values()), strict=True)]
    base_rounds = [sum(run) for run in zip(*(s[1] for s in samples.values()), strict=True)]
    per_query = {
        label: {
            "query": QUERIES[label],
            "rows": counts[label],
            "ours_ms": summary(ours, 1000.0),
            "baseline_ms": summary(base, 1000.0),
            "ratio": round(statistics.median(ours) / statistics.median(base), 3),
        }
        for label, (ours, base) in samples.items()
    }
    return Result(
        name=NAME,
        value=round(_per_search(ours_rounds, len(QUERIES)), 4),
        unit="ms/search",
        baseline=round(_per_search(base_rounds, len(QUERIES)), 4),
        target=TARGET_RATIO,
        details={
            "quick": quick,
            "products": size,
            "limit": LIMIT,
            "repetitions": repetitions,
            "searches_per_round": len(QUERIES),
            "backend": f"sqlite {sqlite3.sqlite_version}, file in a temp dir",
            "ours_round_ms": summary(ours_rounds, 1000.0),
            "baseline_round_ms": summary(base_rounds, 1000.0),
            "queries": per_query,
        },
    )
