"""Portal settings: partial, validated, versioned updates; the cache; export and import."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest

from membership_core import (
    Conflict,
    MembershipError,
    Portal,
    SettingsChanged,
    ValidationError,
    hookimpl,
)
from membership_core.adapters.ids import RandomIds
from membership_core.domain.settings import (
    AdvancedSettings,
    Placement,
    PortalSettings,
    SiteSettings,
)
from membership_core.services._settings_cache import SettingsCache
from membership_core.services._settings_rules import MAX_CODE_LENGTH
from membership_core.services.settings import EXPORT_FORMAT
from membership_core.testing import TestPortal, make_test_portal

from .conftest import PortalFactory
from .helpers import build_course, snapshot


class Events:
    def __init__(self) -> None:
        self.seen: list[SettingsChanged] = []

    @hookimpl
    def membership_domain_event(self, event: object) -> None:
        if isinstance(event, SettingsChanged):
            self.seen.append(event)


# -- partial, validated, versioned ------------------------------------------------------


def test_defaults_until_changed(open_portal: PortalFactory) -> None:
    portal = open_portal()
    settings = portal.settings.get()
    assert settings == PortalSettings()
    assert settings.version == 0
    assert portal.settings.site() == SiteSettings()
    assert portal.settings.base_url() == "https://members.example.com"
    assert portal.settings.history() == []


def test_an_update_changes_only_the_fields_given(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme Academy", timezone="Europe/Berlin")
    site = portal.settings.update_site(currency="EUR")
    assert site == SiteSettings("Acme Academy", "Europe/Berlin", "EUR", None)
    assert portal.settings.update_builder(allow_video_download=True).allow_comments is True
    assert portal.settings.site() == site  # another area left it alone


def test_every_change_is_versioned_with_who_what_and_when(open_portal: PortalFactory) -> None:
    events = Events()
    portal = open_portal(plugins=[events])
    start = portal.clock.now()
    portal.settings.update_site(title="Acme", changed_by="ada@acme.test")
    portal.clock.advance(hours=1)
    portal.settings.update_site(title="Acme", currency="EUR")  # title unchanged
    portal.settings.update_advanced(custom_css="a { color: red }", changed_by="bob")

    assert portal.settings.get().version == 3
    history = portal.settings.history()
    assert [(c.version, c.area, c.fields, c.changed_by) for c in history] == [
        (3, "advanced", ("custom_css",), "bob"),
        (2, "site", ("currency",), None),
        (1, "site", ("title",), "ada@acme.test"),
    ]
    assert history[2].before == {"title": "Membership Portal"}
    assert history[2].after == {"title": "Acme"}
    assert history[2].changed_at == start
    assert history[1].changed_at == start.replace(hour=start.hour + 1)
    assert [c.fields for c in portal.settings.history(area="site", limit=1)] == [("currency",)]
    assert [(e.area, e.fields, e.version, e.changed_by) for e in events.seen] == [
        ("site", ("title",), 1, "ada@acme.test"),
        ("site", ("currency",), 2, None),
        ("advanced", ("custom_css",), 3, "bob"),
    ]


def test_an_update_that_changes_nothing_writes_nothing(open_portal: PortalFactory) -> None:
    events = Events()
    portal = open_portal(plugins=[events])
    portal.settings.update_site(title="Acme")
    portal.settings.update_site(title="Acme")
    portal.settings.update_builder()
    assert portal.settings.get().version == 1
    assert len(portal.settings.history()) == 1
    assert len(events.seen) == 1


SITE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"title": ""}, "title", "empty"),
    ({"title": "x" * 201}, "title", "200"),
    ({"title": 5}, "title", "str"),
    ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
    ({"currency": "EURO"}, "currency", "3"),
    ({"currency": "ABC"}, "currency", "ISO 4217"),
    ({"support_email": "help"}, "support_email", "email"),
]


@pytest.mark.parametrize(("fields", "field", "phrase"), SITE_ERRORS, ids=repr)
def test_bad_site_fields_are_refused_by_name(
    open_portal: PortalFactory, fields: dict[str, Any], field: str, phrase: str
) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme")
    before = portal.settings.get()
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_site(**fields)
    assert caught.value.field == field
    assert phrase.lower() in str(caught.value).lower()
    assert portal.settings.get() == before
    assert len(portal.settings.history()) == 1


def test_changed_by_and_history_arguments_are_checked(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError, match="changed_by"):
        portal.settings.update_site(title="Acme", changed_by="x" * 201)
    with pytest.raises(ValidationError, match="area"):
        portal.settings.history(area="colours")
    with pytest.raises(ValidationError, match="limit"):
        portal.settings.history(limit=0)
    assert portal.settings.get().version == 0


# -- advanced code ------------------------------------------------------------------------


def test_the_admins_code_is_stored_as_given_and_placed(open_portal: PortalFactory) -> None:
    portal = open_portal()
    head = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    advanced = portal.settings.update_advanced(
        custom_css="body { --brand: #0af; }",
        custom_js="console.log('{{ member.email }}')",  # never rendered as a template
        head_code=head,
        body_code="<noscript><img src='https://px.example/p.gif'></noscript>",
    )
    assert advanced.custom_js == "console.log('{{ member.email }}')"
    assert portal.settings.advanced() == advanced
    assert [(s.field, s.placement, s.html) for s in advanced.snippets()] == [
        ("custom_css", Placement.HEAD, "<style>body { --brand: #0af; }</style>"),
        ("head_code", Placement.HEAD, head),
        ("custom_js", Placement.BODY_END, "<script>console.log('{{ member.email }}')</script>"),
        ("body_code", Placement.BODY_END, advanced.body_code),
    ]
    assert AdvancedSettings().snippets() == ()


def test_no_member_value_reaches_the_admins_code(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_advanced(custom_js="track('{{ member.first_name }}')")
    course = build_course(portal)
    portal.checkout.purchase(
        course.offer.id, email="eve@example.com", first_name="</script><script>steal()"
    )
    assert portal.settings.advanced().custom_js == "track('{{ member.first_name }}')"
    assert all("steal" not in s.html for s in portal.settings.advanced().snippets())


@pytest.mark.parametrize("field", ["custom_css", "custom_js", "head_code", "body_code"])
def test_code_fields_are_bounded(open_portal: PortalFactory, field: str) -> None:
    portal = open_portal()
    portal.settings.update_advanced(**{field: "x" * MAX_CODE_LENGTH})
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_advanced(**{field: "y" * (MAX_CODE_LENGTH + 1)})
    assert caught.value.field == field
    assert "100,000" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_advanced(**{field: b"bytes"})
    assert caught.value.field == field
    assert getattr(portal.settings.advanced(), field) == "x" * MAX_CODE_LENGTH


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("custom_css", "a{}</STYLE><script>x()</script>"),
        ("custom_js", "x()</script ><b>"),
        ("custom_js", "if (a <!--b) {}"),
    ],
)
def test_code_that_would_break_out_of_its_element_is_refused(
    open_portal: PortalFactory, field: str, code: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_advanced(**{field: code})
    assert caught.value.field == field
    assert "break every page" in str(caught.value)
    assert portal.settings.get().version == 0


SNIPPETS_ACCEPTED = [
    "<!-- Tag Manager -->\n<script>(function(w){w.dataLayer=[];})(window);</script>",
    '<noscript><iframe src="https://tags.example/ns.html" height="0"></iframe></noscript>',
    '<meta name="verify" content="abc"><link rel="preconnect" href="https://cdn.example">',
    "<img src='https://px.example/p.gif' alt=''/><br>",
    "<p>An optional end tag",
    "plain text & more",
    "fish & chips &",  # a bare & at the end (found by hypothesis: it was refused)
    "x < y",
]
SNIPPETS_REFUSED = [
    ("<script>track()", "leaves <script> open"),
    ("<div class='banner'>", "leaves <div> open"),
    ("</div>", "never opened"),
    ("<!-- forgotten end", "ends inside a comment"),
    ("<script>var a = '<!--<script>';</script>", "<!-- inside a <script>"),
    ("<img src='x'", "ends inside a comment or a tag"),
]


@pytest.mark.parametrize("code", SNIPPETS_ACCEPTED)
@pytest.mark.parametrize("field", ["head_code", "body_code"])
def test_tracking_snippets_as_vendors_write_them_are_accepted(
    open_portal: PortalFactory, field: str, code: str
) -> None:
    portal = open_portal()
    assert getattr(portal.settings.update_advanced(**{field: code}), field) == code


@pytest.mark.parametrize(("code", "phrase"), SNIPPETS_REFUSED)
@pytest.mark.parametrize("field", ["head_code", "body_code"])
def test_snippets_that_would_swallow_or_cut_the_page_are_refused(
    open_portal: PortalFactory, field: str, code: str, phrase: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_advanced(**{field: code})
    assert caught.value.field == field
    assert phrase in caught.value.problem
    assert portal.settings.get().version == 0


# -- builder and sender --------------------------------------------------------------------


def test_builder_switches(open_portal: PortalFactory) -> None:
    portal = open_portal()
    builder = portal.settings.update_builder(allow_video_download=True, autoplay_next_lesson=True)
    assert (builder.allow_video_download, builder.autoplay_next_lesson) == (True, True)
    assert (builder.allow_comments, builder.show_progress) == (True, True)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_builder(show_progress="yes")  # type: ignore[arg-type]
    assert caught.value.field == "show_progress"
    assert portal.settings.builder() == builder


def test_sender_and_reply_to_reach_every_email(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme Academy")
    email = portal.settings.update_sender(sender_email="hello@acme.test", reply_to="help@acme.test")
    assert (email.sender_name, email.sender_email, email.reply_to) == (
        None,
        "hello@acme.test",
        "help@acme.test",
    )
    member = portal.members.invite("ada@example.com")
    portal.mail.send(member.id, "welcome")
    message = portal.mailer.last
    assert message.sender == "Acme Academy <hello@acme.test>"
    assert message.reply_to == "help@acme.test"

    portal.settings.update_sender(sender_name="The Acme Team", reply_to=None)
    portal.mail.send(member.id, "welcome")
    assert portal.mailer.last.sender == "The Acme Team <hello@acme.test>"
    assert portal.mailer.last.reply_to is None
    for bad in ({"sender_email": "nobody"}, {"reply_to": "x@"}, {"sender_name": "n" * 201}):
        with pytest.raises(ValidationError) as caught:
            portal.settings.update_sender(**bad)
        assert caught.value.field == next(iter(bad))


# -- the cache ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def sql_url(request: pytest.FixtureRequest) -> str:
    """A database two portal objects (two caches) can share."""
    return str(request.getfixturevalue(request.param))


def test_a_change_is_seen_at_once_by_another_portal_object(sql_url: str) -> None:
    first = Portal.open(sql_url, load_entrypoints=False)
    second = Portal.open(sql_url, load_entrypoints=False)
    try:
        assert second.settings.site().title == "Membership Portal"  # now cached
        first.settings.update_site(title="Acme")
        assert second.settings.site().title == "Acme"
        second.settings.update_site(currency="EUR")
        assert first.settings.site() == SiteSettings("Acme", "UTC", "EUR", None)
        assert first.settings.get().version == second.settings.get().version == 2
    finally:
        first.close()
        second.close()


def test_a_change_made_by_another_process_is_seen_at_once(sqlite_url: str) -> None:
    portal = Portal.open(sqlite_url, load_entrypoints=False)
    try:
        assert portal.settings.site().title == "Membership Portal"
        script = (
            "import sys\n"
            "from membership_core import Portal\n"
            "with Portal.open(sys.argv[1], load_entrypoints=False) as p:\n"
            "    p.settings.update_site(title='Changed elsewhere')\n"
        )
        subprocess.run([sys.executable, "-c", script, sqlite_url], check=True, timeout=60)
        assert portal.settings.site().title == "Changed elsewhere"
    finally:
        portal.close()


def test_cached_reads_do_not_rebuild_the_settings(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme")
    rebuilt: list[int] = []
    real_put = SettingsCache.put

    def counting_put(self: SettingsCache, value: PortalSettings) -> None:
        rebuilt.append(value.version)  # only a read that missed the cache stores one
        real_put(self, value)

    monkeypatch.setattr(SettingsCache, "put", counting_put)
    for _ in range(5):
        assert portal.settings.site().title == "Acme"
    assert rebuilt == []
    # A change made behind this portal's back (another process) is read once, then cached.
    other = make_test_portal(portal.storage, tenant=portal.tenant, ids=RandomIds())
    other.settings.update_site(title="Globex")
    rebuilt.clear()
    for _ in range(3):
        assert portal.settings.site().title == "Globex"
    assert rebuilt == [2]


def test_a_rolled_back_update_leaves_no_trace_in_the_cache(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme")
    before = snapshot(portal)
    exported = portal.settings.export()
    exported["settings"]["site"]["title"] = "Imported"
    exported["settings"]["app"]["theme_color"] = "teal"  # fails after site was applied
    with pytest.raises(ValidationError) as caught:
        portal.settings.import_settings(exported)
    assert caught.value.field == "app.theme_color"
    assert portal.settings.site().title == "Acme"
    assert snapshot(portal) == before


def test_concurrent_partial_updates_keep_both_changes(open_portal: PortalFactory) -> None:
    portal = open_portal()
    errors: list[BaseException] = []

    def change(**fields: Any) -> None:
        try:
            for _ in range(5):
                portal.settings.update_builder(**fields)
                portal.settings.update_builder(**{k: not v for k, v in fields.items()})
            portal.settings.update_builder(**fields)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=change, kwargs={"allow_video_download": True}),
        threading.Thread(target=change, kwargs={"autoplay_next_lesson": True}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    builder = portal.settings.builder()
    assert builder.allow_video_download
    assert builder.autoplay_next_lesson
    versions = [change.version for change in portal.settings.history(limit=100)]
    assert versions == list(range(22, 0, -1))


# -- export and import ----------------------------------------------------------------------


def _configure(portal: TestPortal) -> None:
    portal.settings.update_site(title="Acme Academy", timezone="Europe/Berlin", currency="EUR")
    portal.settings.update_advanced(custom_css="h1 { color: teal }", head_code="<meta name=a>")
    portal.settings.update_builder(allow_video_download=True)
    portal.settings.update_sender(sender_name="Acme", sender_email="hello@acme.test")
    portal.settings.update_email("drip", enabled=True)


def test_export_is_json_and_imports_into_another_portal(open_portal: PortalFactory) -> None:
    source = open_portal(tenant="source")
    _configure(source)
    data = json.loads(json.dumps(source.settings.export()))
    assert data["format"] == EXPORT_FORMAT
    assert "enabled_at" not in data["settings"]["email"]["drip"]
    assert "verification_token" not in data["settings"]["domain"]

    target = open_portal(tenant="target")
    target.clock.advance(days=3)
    settings = target.settings.import_settings(data, changed_by="migration")
    for area in ("site", "advanced", "builder"):
        assert getattr(settings, area) == getattr(source.settings.get(), area)
    assert settings.email.sender_email == "hello@acme.test"
    assert settings.email.drip.enabled
    assert settings.email.drip.enabled_at == target.clock.now()  # no backlog
    assert {(c.area, c.changed_by) for c in target.settings.history()} == {
        ("site", "migration"),
        ("advanced", "migration"),
        ("builder", "migration"),
        ("email", "migration"),
    }
    assert len({c.version for c in target.settings.history()}) == 1  # one transaction


def test_import_of_some_areas_only(open_portal: PortalFactory) -> None:
    source = open_portal(tenant="source")
    _configure(source)
    target = open_portal(tenant="target")
    target.settings.update_site(title="Globex")
    settings = target.settings.import_settings(source.settings.export(), areas=("advanced",))
    assert settings.site.title == "Globex"
    assert settings.advanced.custom_css == "h1 { color: teal }"


IMPORT_ERRORS: list[tuple[Any, dict[str, Any], str]] = [
    ({"format": "other"}, {}, "data"),
    ({"format": EXPORT_FORMAT}, {}, "data"),
    ("not a mapping", {}, "data"),
    (None, {"areas": ("colours",)}, "areas"),
    ({"format": EXPORT_FORMAT, "settings": {"site": {}}}, {"areas": ("app",)}, "areas"),
    ({"format": EXPORT_FORMAT, "settings": {"site": {"title": 3}}}, {}, "site"),
    ({"format": EXPORT_FORMAT, "settings": {"site": {"colour": "teal"}}}, {}, "site"),
    (
        {"format": EXPORT_FORMAT, "settings": {"advanced": {"custom_js": "x</script>"}}},
        {},
        "advanced.custom_js",
    ),
    (
        {"format": EXPORT_FORMAT, "settings": {"site": {"timezone": "Nowhere/Land"}}},
        {},
        "site.timezone",
    ),
]


@pytest.mark.parametrize(("data", "options", "field"), IMPORT_ERRORS, ids=repr)
def test_bad_imports_are_refused_and_change_nothing(
    open_portal: PortalFactory, data: Any, options: dict[str, Any], field: str
) -> None:
    portal = open_portal()
    _configure(portal)
    if data is None:
        data = portal.settings.export()
    before = snapshot(portal)
    with pytest.raises(ValidationError) as caught:
        portal.settings.import_settings(data, **options)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert snapshot(portal) == before


def test_an_imported_template_choice_must_exist_here(open_portal: PortalFactory) -> None:
    source = open_portal(tenant="source")
    template = source.templates.create(
        "Branded", kind="drip", subject="New lessons", html="<p>{{ member.first_name }}</p>"
    )
    source.settings.update_email("drip", template_id=template.id)
    target = open_portal(tenant="target")
    with pytest.raises(ValidationError) as caught:
        target.settings.import_settings(source.settings.export())
    assert caught.value.field == "email.drip.template_id"
    assert target.settings.get().version == 0


def test_errors_are_membership_errors(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(MembershipError):
        portal.settings.update_site(timezone="Mars/Olympus")
    assert issubclass(Conflict, MembershipError)
