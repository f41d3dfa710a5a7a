"""settings_read: reading a portal's settings, cached, vs the one query the cache cannot skip.

Ours is ``portal.settings.get()`` on a test portal over an SQLite file whose
every settings area is filled in (site, advanced code, logo and favicon,
builder, sub-domain, sender and emails, an enabled app with its icons) after a
few hundred changes. The baseline is a read-only unit of work that reads the
settings stamp alone (one primary-key query), which every read makes to see
another process's change. A ratio near 1 means the cache costs nothing beyond
that query. ``details`` adds the read without the cache (the row decoded and
every nested value rebuilt on each call): what the cache saves.
"""

from __future__ import annotations

import io
import statistics
import tempfile
from pathlib import Path

from _registry import Result, benchmark
from _timing import interleaved, summary
from membership_core.services._settings_cache import SettingsCache
from membership_core.testing import TestPortal, make_test_portal

NAME = "settings_read"
#: A cached read within 1.5 times the stamp query alone.
TARGET_RATIO = 1.5
#: Reads per timed sample (one read is tens of microseconds).
BATCH = 200


def _png(size: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (size, size), "#1a2b3c").save(out, "PNG")
    return out.getvalue()


def _configure(portal: TestPortal, changes: int) -> None:
    settings = portal.settings
    settings.update_site(title="Blue Note Piano School", timezone="Europe/Vienna", currency="EUR")
    settings.update_advanced(custom_css="h1 { color: #123 }" * 50, head_code="<meta name=x>")
    settings.update_branding(logo=_png(640), favicon=_png(32))
    settings.update_domain(subdomain="bluenote")
    settings.update_sender(sender_name="Blue Note", sender_email="hello@bluenote.example")
    for email in ("welcome", "drip", "offer_access"):
        settings.update_email(email, enabled=True)
    settings.update_app(name="Blue Note", short_name="Blue Note", icon=_png(512))
    settings.update_app(enabled=True)
    for number in range(changes):  # a long history does not slow reads down
        settings.update_builder(allow_video_download=number % 2 == 0)


@benchmark(NAME)
def settings_read(quick: bool) -> Result:
    """A cached settings read vs the stamp query alone, and vs an uncached read."""
    repetitions = 5 if quick else 25
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        portal = make_test_portal(f"sqlite:///{Path(folder) / 'settings.db'}")
        try:
            _configure(portal, 20 if quick else 300)
            storage, tenant, context = portal.storage, portal.tenant, portal._context

            def cached() -> None:
                for _ in range(BATCH):
                    portal.settings.get()

            def stamp_only() -> None:
                for _ in range(BATCH):
                    with storage.unit_of_work(tenant, write=False) as uow:
                        uow.settings_stamps.get("portal")

            def uncached() -> None:
                for _ in range(BATCH):
                    with storage.unit_of_work(tenant, write=False) as uow:
                        SettingsCache().read(uow)

            expected = portal.settings.get()
            with storage.unit_of_work(tenant, write=False) as uow:
                assert SettingsCache().read(uow) == expected == context.settings(uow)
            for warm_up in (cached, stamp_only, uncached):
                warm_up()
            samples = interleaved(
                {"cached": (cached, stamp_only), "uncached": (uncached, stamp_only)},
                repetitions,
            )
        finally:
            portal.close()
    per_read = 1000 / BATCH  # seconds per batch -> milliseconds per read
    ours = statistics.median(samples["cached"][0]) * per_read
    baseline = statistics.median(samples["cached"][1]) * per_read
    rebuilt = statistics.median(samples["uncached"][0]) * per_read
    return Result(
        NAME,
        round(ours, 4),
        "ms/read",
        round(baseline, 4),
        TARGET_RATIO,
        {
            "quick": quick,
            "reads_per_sample": BATCH,
            "ours": "portal.settings.get() (cached, checked against the stamp)",
            "baseline_call": "a read-only unit of work reading the settings stamp",
            "cached_ms_per_read": summary(samples["cached"][0], per_read),
            "stamp_ms_per_read": summary(samples["cached"][1], per_read),
            "uncached_ms_per_read": summary(samples["uncached"][0], per_read),
            "uncached_vs_cached": round(rebuilt / ours, 2),
            "settings_version": expected.version,
            "backend": "sqlite, WAL, file in a temp dir",
        },
    )
