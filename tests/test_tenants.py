"""Portal (tenant) names. What one portal can reach of another: test_tenant_isolation.py."""

from __future__ import annotations

import pytest

from membership_core import Portal


def test_tenant_names_are_validated() -> None:
    from membership_core import ValidationError

    for bad in ["", "Acme", "a b", "-x", "x" * 64, 3]:
        with pytest.raises(ValidationError) as info:
            Portal.open("memory://", tenant=bad, load_entrypoints=False)  # type: ignore[arg-type]
        assert info.value.field == "tenant"
