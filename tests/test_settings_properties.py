"""Properties of settings updates: partial updates merge, every change is one version, and
whatever can be saved survives export, JSON and import unchanged."""

from __future__ import annotations

import json
import zoneinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core import ValidationError
from membership_core.domain.email_settings import AutomatedEmail
from membership_core.domain.money import CURRENCY_EXPONENTS
from membership_core.testing import TestPortal, make_test_portal

ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})[:200]
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60)
_name = _text.filter(lambda value: 0 < len(value.strip()) <= 44)
_email = st.from_regex(r"[a-z0-9.+]{1,12}@[a-z0-9]{1,10}\.(com|org|test)", fullmatch=True)
_colour = st.from_regex(r"#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}", fullmatch=True)
# The admin's code, without markup (tests/test_settings.py covers what markup may do).
_code = _text.filter(lambda value: "<" not in value)

SITE = st.fixed_dictionaries(
    {},
    optional={
        "title": _name,
        "timezone": st.sampled_from(ZONES),
        "currency": st.sampled_from(sorted(CURRENCY_EXPONENTS)),
        "support_email": st.none() | _email,
    },
)
ADVANCED = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(("custom_css", "custom_js", "head_code", "body_code"), _code)
)
BUILDER = st.fixed_dictionaries(
    {},
    optional={
        f: st.booleans()
        for f in ("allow_video_download", "allow_comments", "show_progress", "autoplay_next_lesson")
    },
)
SENDER = st.fixed_dictionaries(
    {},
    optional={
        "sender_name": st.none() | _name,
        "sender_email": _email,
        "reply_to": st.none() | _email,
    },
)
APP = st.fixed_dictionaries(
    {},
    optional={
        "name": st.none() | _name,
        "short_name": st.none() | _name,
        "description": _code,
        "theme_color": _colour,
        "background_color": _colour,
    },
)
UPDATES = st.lists(
    st.one_of(
        st.tuples(st.just("site"), SITE),
        st.tuples(st.just("advanced"), ADVANCED),
        st.tuples(st.just("builder"), BUILDER),
        st.tuples(st.just("sender"), SENDER),
        st.tuples(st.just("app"), APP),
        st.tuples(st.just("email"), st.sampled_from(["welcome", "drip", "new_comment"])),
    ),
    max_size=8,
)


def _apply(portal: TestPortal, area: str, values: Any) -> None:
    settings = portal.settings
    calls = {
        "site": settings.update_site,
        "advanced": settings.update_advanced,
        "builder": settings.update_builder,
        "sender": settings.update_sender,
        "app": settings.update_app,
    }
    if area == "email":
        on = settings.email().choice(AutomatedEmail(values)).enabled
        settings.update_email(values, enabled=not on)
    else:
        calls[area](**values)


def _comparable(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


@given(UPDATES)
def test_what_is_saved_survives_export_json_and_import(updates: list[tuple[str, Any]]) -> None:
    source, target = make_test_portal(tenant="source"), make_test_portal(tenant="target")
    for area, values in updates:
        _apply(source, area, values)
    exported = json.loads(json.dumps(source.settings.export()))
    target.clock.advance(days=1)
    imported = target.settings.import_settings(exported)
    original = source.settings.get()
    for area in ("site", "advanced", "builder", "branding", "app"):
        assert getattr(imported, area) == getattr(original, area)
    assert _comparable(target.settings.export()) == _comparable(exported)
    changed_areas = {change.area for change in target.settings.history()}
    assert len({change.version for change in target.settings.history()}) <= 1
    assert changed_areas <= {"site", "advanced", "builder", "email", "app"}


@given(st.lists(SITE, max_size=10))
def test_partial_updates_merge_and_each_change_is_one_version(updates: list[Any]) -> None:
    portal = make_test_portal()
    expected = {"title": "Membership Portal", "timezone": "UTC", "currency": "USD"}
    expected |= {"support_email": None}
    versions = 0
    for values in updates:
        before = dict(expected)
        site = portal.settings.update_site(**values)
        expected |= {
            name: value.strip() if isinstance(value, str) else value
            for name, value in values.items()
        }
        assert {name: getattr(site, name) for name in expected} == expected
        versions += expected != before
        assert portal.settings.get().version == versions
    history = portal.settings.history(limit=100)
    assert [change.version for change in history] == list(range(versions, 0, -1))
    for change in history:
        assert set(change.fields) == set(change.after)
        assert all(change.before[name] != change.after[name] for name in change.fields)


@given(_text)
def test_a_title_is_saved_stripped_or_refused_by_name(title: str) -> None:
    portal = make_test_portal()
    if title.strip():
        assert portal.settings.update_site(title=title).title == title.strip()
        return
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_site(title=title)
    assert caught.value.field == "title"
    assert portal.settings.get().version == 0
