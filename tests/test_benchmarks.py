"""The benchmark runner: ``benchmarks/run.py`` runs, prints JSON lines, rejects unknown names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUNNER = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
REQUIRED = {"name", "value", "unit", "baseline", "ratio", "target"}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def quick_results() -> list[dict[str, Any]]:
    """Every benchmark's result from one ``--quick`` run."""
    completed = run("--quick")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines, "run.py --quick printed nothing"
    results = [json.loads(line) for line in lines]
    assert all(isinstance(result, dict) for result in results)
    return results


def test_quick_run_prints_one_json_object_per_benchmark(
    quick_results: list[dict[str, Any]],
) -> None:
    names = [result["name"] for result in quick_results]
    assert "catalog_search" in names
    assert len(names) == len(set(names))
    for result in quick_results:
        assert result.keys() >= REQUIRED, result
        assert isinstance(result["value"], int | float)
        assert result["value"] > 0
        assert isinstance(result["unit"], str)
        assert result["unit"]
        assert isinstance(result["target"], int | float)
        assert isinstance(result.get("details", {}), dict)
        if result["baseline"] is None:
            assert result["ratio"] is None
        else:
            assert result["baseline"] > 0
            assert result["ratio"] == pytest.approx(result["value"] / result["baseline"], rel=1e-3)


def test_catalog_search_details(quick_results: list[dict[str, Any]]) -> None:
    (result,) = [r for r in quick_results if r["name"] == "catalog_search"]
    assert result["target"] == 2.0
    details = result["details"]
    assert details["quick"] is True
    assert details["products"] == 1_000
    assert set(details["queries"]) >= {"common", "rare", "no_match"}


def test_checkout_throughput_details(quick_results: list[dict[str, Any]]) -> None:
    (result,) = [r for r in quick_results if r["name"] == "checkout_throughput"]
    assert result["target"] == 4.0
    assert result["unit"] == "ms/checkout"
    details = result["details"]
    assert details["quick"] is True
    assert details["checkouts"] == 100
    assert details["checkouts_per_second"] > 0
    assert {"members", "purchases", "payments", "enrollments"} <= set(details["rows_per_checkout"])


def test_renewals_tick_details(quick_results: list[dict[str, Any]]) -> None:
    (result,) = [r for r in quick_results if r["name"] == "renewals_tick"]
    assert result["target"] == 5.0
    assert result["baseline"] is None
    details = result["details"]
    assert details["quick"] is True
    assert details["subscriptions"] == 2_000
    assert details["due"] == details["charges_succeeded"] == 20
    assert details["uses_index"] is True


def test_mail_queue_details(quick_results: list[dict[str, Any]]) -> None:
    (result,) = [r for r in quick_results if r["name"] == "mail_queue"]
    assert result["target"] == 3.0
    assert result["unit"] == "ms/email"
    details = result["details"]
    assert details["quick"] is True
    assert details["emails"] == 500
    assert details["template"] == "drip"
    assert details["emails_per_unit_of_work"] == 100
    # The idempotency look-up and the insert: the site settings are read once per batch.
    assert details["statements_per_email"] < 2.1


def test_settings_read_details(quick_results: list[dict[str, Any]]) -> None:
    (result,) = [r for r in quick_results if r["name"] == "settings_read"]
    details = result["details"]
    assert result["unit"] == "ms/read"
    assert details["settings_version"] > 20  # every area and the history were written
    assert details["uncached_ms_per_read"]["median"] > 0


def test_list_names_every_benchmark() -> None:
    completed = run("--list")
    assert completed.returncode == 0, completed.stderr
    names = [line.split()[0] for line in completed.stdout.splitlines() if line.strip()]
    assert {
        "access_can_view",
        "access_outline",
        "catalog_search",
        "checkout_throughput",
        "drip_tick",
        "login_timing",
        "mail_queue",
        "renewals_tick",
        "settings_read",
    } <= set(names)


def test_unknown_name_exits_2_and_lists_the_known_ones() -> None:
    completed = run("no_such_benchmark", "--quick")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "no_such_benchmark" in completed.stderr
    assert "catalog_search" in completed.stderr
