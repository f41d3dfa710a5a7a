"""pytest fixtures for host test suites, registered through the ``pytest11`` entry point.

``membership_portal`` is an in-memory portal with a frozen clock
(``membership_portal.clock.advance(days=7)``), deterministic ids and a captured
mailbox (``membership_portal.mailer.sent``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import TestPortal, make_test_portal


@pytest.fixture
def membership_portal() -> Iterator[TestPortal]:
    """A fresh in-memory portal with test doubles for clock, ids and mail."""
    portal = make_test_portal()
    try:
        yield portal
    finally:
        portal.close()
