"""Test helpers: portals on every back end and a ready-made course."""

from __future__ import annotations

from typing import NamedTuple

from membership_core import Lesson, Offer, Portal, Product


class Course(NamedTuple):
    product: Product
    lessons: list[Lesson]
    offer: Offer


def build_course(portal: Portal, *, lessons: int = 3, title: str = "Python 101") -> Course:
    """A published product with one category per two lessons and a published free offer."""
    product = portal.catalog.create_product(title)
    made: list[Lesson] = []
    category = None
    for index in range(lessons):
        if index % 2 == 0:
            category = portal.catalog.add_category(product.id, f"Module {index // 2 + 1}")
        assert category is not None
        made.append(portal.catalog.add_lesson(product.id, category.id, f"Lesson {index + 1}"))
    product = portal.catalog.publish_product(product.id)
    offer = portal.offers.create_offer(f"{title} (free)", [product.id])
    offer = portal.offers.publish(offer.id)
    return Course(product, made, offer)
