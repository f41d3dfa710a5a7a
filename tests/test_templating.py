"""The sandboxed email template renderer and the shipped default templates."""

from __future__ import annotations

import importlib.metadata
import re
import threading
from typing import Any, NamedTuple

import pytest
from packaging.version import Version

from membership_core.errors import ValidationError
from membership_core.templating import (
    COMMON_VARIABLES,
    DEFAULT_TEMPLATE_VARIABLES,
    DEFAULT_TEMPLATES,
    EmailTemplate,
    RenderedEmail,
    TemplateError,
    TemplateRenderer,
    html_to_text,
    load_default,
    render_string,
)

FULL_CONTEXT: dict[str, Any] = {
    "member": {
        "first_name": "<script>alert(1)</script>",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "display_name": "Ada Lovelace",
    },
    "portal": {
        "title": "Piano & Voice School",
        "url": "https://piano.test",
        "logo_url": "https://piano.test/logo.png",
    },
    "course": {"title": "Scales 101", "url": "https://piano.test/courses/scales"},
    "offer": {"title": "All-access pass", "url": "https://piano.test/offers/all"},
    "lessons": [
        {"title": "C major", "url": "https://piano.test/lessons/c"},
        {"title": "G major", "url": "https://piano.test/lessons/g"},
    ],
    "comment": {
        "author": "Bob",
        "body": "Loved it!\nSee you <b>next week</b>.",
        "url": "https://piano.test/comments/1",
    },
    "certificate": {"serial": "CERT-2026-0001", "verification_url": "https://piano.test/v/1"},
    "login_url": "https://piano.test/login?token=abc",
    "login_code": "ABCD-EFGH",
    "reset_url": "https://piano.test/reset?token=xyz",
}

ESCAPED_NAME = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def context_for(name: str) -> dict[str, Any]:
    """Exactly the variables the default template ``name`` requires, nothing more."""
    return {key: FULL_CONTEXT[key] for key in DEFAULT_TEMPLATE_VARIABLES[name]}


# -- shipped defaults -------------------------------------------------------------


def test_every_default_template_has_its_variables_listed() -> None:
    assert set(DEFAULT_TEMPLATE_VARIABLES) == set(DEFAULT_TEMPLATES)
    for variables in DEFAULT_TEMPLATE_VARIABLES.values():
        assert set(variables) <= set(COMMON_VARIABLES)


@pytest.mark.parametrize("name", DEFAULT_TEMPLATES)
def test_default_template_passes_check(renderer: TemplateRenderer, name: str) -> None:
    template = load_default(name)
    assert template.text is not None
    renderer.check(template, COMMON_VARIABLES)


@pytest.mark.parametrize("name", DEFAULT_TEMPLATES)
def test_default_template_renders_with_exactly_its_variables(
    renderer: TemplateRenderer, name: str
) -> None:
    rendered = renderer.render(load_default(name), context_for(name))

    assert isinstance(rendered, RenderedEmail)
    assert rendered.subject.strip()
    assert "\n" not in rendered.subject
    assert "{{" not in rendered.subject + rendered.html + rendered.text
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    # The member's name is data, never markup.
    assert ESCAPED_NAME in rendered.html
    assert "<script>" not in rendered.html
    assert "Piano &amp; Voice School" in rendered.html
    assert rendered.text.strip()
    assert rendered.text.startswith("Hi <script>alert(1)</script>,")
    assert "Piano & Voice School" in rendered.text


@pytest.mark.parametrize("name", DEFAULT_TEMPLATES)
def test_default_template_renders_with_every_common_variable(
    renderer: TemplateRenderer, name: str
) -> None:
    rendered = renderer.render(load_default(name), FULL_CONTEXT)
    assert 'src="https://piano.test/logo.png"' in rendered.html


def test_default_templates_use_their_links(renderer: TemplateRenderer) -> None:
    expectations = {
        "welcome": "https://piano.test/login?token=abc",
        "password_reset": "https://piano.test/reset?token=xyz",
        "magic_link": "https://piano.test/login?token=abc",
        "offer_access": "https://piano.test/offers/all",
        "new_comment": "https://piano.test/comments/1",
        "drip": "https://piano.test/lessons/g",
        "new_materials": "https://piano.test/lessons/c",
        "course_completed": "https://piano.test/courses/scales",
    }
    for name, url in expectations.items():
        rendered = renderer.render(load_default(name), context_for(name))
        assert f'href="{url}"' in rendered.html, name
        assert url in rendered.text, name


def test_default_templates_show_the_title_without_a_logo(renderer: TemplateRenderer) -> None:
    context = context_for("welcome")
    context["portal"] = {**FULL_CONTEXT["portal"], "logo_url": None}

    rendered = renderer.render(load_default("welcome"), context)

    assert "<img" not in rendered.html
    assert "Piano &amp; Voice School</span>" in rendered.html


def test_course_completed_mentions_the_certificate_only_when_there_is_one(
    renderer: TemplateRenderer,
) -> None:
    template = load_default("course_completed")

    without = renderer.render(template, context_for("course_completed"))
    with_certificate = renderer.render(
        template, {**context_for("course_completed"), "certificate": FULL_CONTEXT["certificate"]}
    )

    assert "Scales 101" in without.subject
    assert "certificate" not in without.text.lower()
    assert "https://piano.test/v/1" in with_certificate.html
    assert "https://piano.test/v/1" in with_certificate.text
    assert "CERT-2026-0001" in with_certificate.text


def test_new_comment_escapes_the_comment_body(renderer: TemplateRenderer) -> None:
    rendered = renderer.render(load_default("new_comment"), context_for("new_comment"))

    assert "See you &lt;b&gt;next week&lt;/b&gt;." in rendered.html
    assert "Bob" in rendered.subject


def test_drip_subject_names_a_single_lesson(renderer: TemplateRenderer) -> None:
    context = {**context_for("drip"), "lessons": FULL_CONTEXT["lessons"][:1]}

    rendered = renderer.render(load_default("drip"), context)

    assert rendered.subject == "New lesson unlocked in Scales 101: C major"


def test_greeting_falls_back_when_the_member_has_no_name(renderer: TemplateRenderer) -> None:
    context = context_for("welcome")
    context["member"] = {"first_name": "", "last_name": "", "email": "x@y.z", "display_name": ""}

    rendered = renderer.render(load_default("welcome"), context)

    assert rendered.text.startswith("Hello,")


def test_load_default_refuses_unknown_names() -> None:
    with pytest.raises(ValidationError) as info:
        load_default("../../etc/passwd")
    assert info.value.field == "name"


# -- check() ------------------------------------------------------------------------


def test_check_names_an_unknown_variable_and_its_line(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(
        subject="Hello",
        html="<p>Hi</p>\n<p>there</p>\n<p>{{ membr.first_name }}</p>",
    )

    with pytest.raises(TemplateError) as info:
        renderer.check(template, COMMON_VARIABLES)

    error = info.value
    assert (error.field, error.line, error.variable) == ("template.html", 3, "membr")
    assert str(error).startswith("template.html: line 3: unknown variable 'membr'")
    assert "did you mean 'member'" in str(error)
    assert isinstance(error, ValidationError)


def test_check_lists_every_unknown_variable(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(subject="{{ a }}\n{{ b }} {{ member }}", html="")

    with pytest.raises(TemplateError) as info:
        renderer.check(template, ["member"])

    assert info.value.field == "template.subject"
    assert info.value.variable == "a"
    assert "also unknown: 'b'" in str(info.value)


def test_check_respects_a_narrower_allowed_list(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(subject="Reset", html="{{ reset_url }}", text="{{ login_url }}")

    with pytest.raises(TemplateError) as info:
        renderer.check(template, ["member", "reset_url"])

    assert (info.value.field, info.value.variable) == ("template.text", "login_url")


def test_check_allows_variables_the_template_defines(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(
        subject="Hi",
        html=(
            "{% set greeting = 'Hello' %}{{ greeting }}"
            "{% for lesson in lessons %}{{ loop.index }} {{ lesson.title }}{% endfor %}"
            "{{ range(3)|join(',') }}"
        ),
    )
    renderer.check(template, ["lessons"])


def test_check_refuses_a_bare_string_as_allowed_variables(renderer: TemplateRenderer) -> None:
    with pytest.raises(ValidationError) as info:
        renderer.check(EmailTemplate(subject="{{ m }}", html=""), "member")
    assert info.value.field == "allowed_variables"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("line one\n{% if member %}\nunclosed", 3),
        ("ok\nok\n{{ member. }}", 3),
        ("{% for x in %}", 1),
        ("fine\n{{ member|no_such_filter }}", 2),
    ],
)
def test_syntax_errors_name_the_line(renderer: TemplateRenderer, source: str, line: int) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.check(EmailTemplate(subject="Hi", html=source), COMMON_VARIABLES)

    assert info.value.field == "template.html"
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)


def test_check_refuses_includes_and_imports(renderer: TemplateRenderer) -> None:
    for source in ("{% include 'x.html' %}", "{% extends 'base' %}", "{% import 'm' as m %}"):
        with pytest.raises(TemplateError, match="self-contained"):
            renderer.check(EmailTemplate(subject="Hi", html=source), COMMON_VARIABLES)


# -- the sandbox ----------------------------------------------------------------------

SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    '{{ "{0.__class__}".format(member) }}',
    "{{ member|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ member['__class__'] }}",
    "{{ joiner.__init__.__globals__['os'] }}",
    "{{ member.update({'first_name': 'x'}) }}",
    "{{ lessons.append(1) }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_escapes_fail_at_render(renderer: TemplateRenderer, source: str) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.render_string(source, FULL_CONTEXT, html=True)

    assert "template tried to reach unsafe attribute" in str(info.value)
    assert info.value.line == 1
    assert FULL_CONTEXT["member"]["first_name"] == "<script>alert(1)</script>"
    assert len(FULL_CONTEXT["lessons"]) == 2


@pytest.mark.parametrize("source", [s for s in SANDBOX_ESCAPES if "__" in s])
def test_sandbox_escapes_with_dunder_names_fail_at_check(
    renderer: TemplateRenderer, source: str
) -> None:
    with pytest.raises(TemplateError, match="unsafe attribute") as info:
        renderer.check(EmailTemplate(subject="Hi", html=source), COMMON_VARIABLES)
    assert info.value.line == 1


class Escape(NamedTuple):
    """A way out of the sandbox, by short name."""

    name: str
    source: str
    #: The name the error must report: the first unsafe attribute reached, or the global.
    refused: str
    #: Whether :meth:`TemplateRenderer.check` refuses it when the template is saved.
    at_check: bool = True


PUBLISHED_ESCAPES = [
    # CVE-2016-10745: str.format walks attributes of its arguments itself.
    Escape("str.format", '{{ "{0.__init__.__globals__}".format(cycler) }}', "__init__"),
    Escape("str.format-nested", '{{ "{0:{1.__class__}}".format(1, member) }}', "__class__"),
    # CVE-2019-10906: the same through str.format_map.
    Escape("str.format_map", '{{ "{m.__class__}".format_map({"m": member}) }}', "__class__"),
    # CVE-2024-56326 (jinja2 3.1.5): a stored reference to format, called later.
    Escape("format-stored", '{% set f = "{0.__class__}".format %}{{ f(member) }}', "__class__"),
    # CVE-2025-27516 (jinja2 3.1.6): |attr fetched the plain, unsandboxed format method.
    Escape("attr-format", '{{ ("{0.__class__}"|attr("format"))(member) }}', "__class__"),
    Escape(
        "attr-format_map",
        '{{ ("{m.__class__}"|attr("format_map"))({"m": member}) }}',
        "__class__",
    ),
    # __globals__ and __subclasses__ walks from what every template can reach.
    Escape("cycler", "{{ cycler.__init__.__globals__.os }}", "__init__"),
    Escape("cycler-method", "{{ cycler('a', 'b').next.__func__.__globals__ }}", "__func__"),
    Escape("joiner", "{{ joiner().__call__.__globals__ }}", "__call__"),
    Escape("namespace", "{{ namespace.__init__.__globals__ }}", "__init__"),
    Escape("namespace-object", "{% set ns = namespace() %}{{ ns.__class__.__mro__ }}", "__class__"),
    Escape("lipsum", "{{ lipsum.__globals__['os'] }}", "lipsum"),  # not a global here
    Escape("range", "{{ range.__globals__ }}", "__globals__"),
    Escape("range-object", "{{ range(3).__class__.__mro__ }}", "__class__"),
    Escape("self", "{{ self.__init__.__globals__ }}", "__init__"),
    Escape(
        "self-context",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__ }}",
        "_TemplateReference__context",
    ),
    Escape("loop", "{% for l in lessons %}{{ loop.__class__.__mro__ }}{% endfor %}", "__class__"),
    Escape(
        "loop-method",
        "{% for l in lessons %}{{ loop.cycle.__func__.__globals__ }}{% endfor %}",
        "__func__",
    ),
    Escape("subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
    Escape(
        "subclasses-attr",
        "{{ ()|attr('__class__')|attr('__base__')|attr('__subclasses__')() }}",
        "__class__",
    ),
    # Names the check cannot read: built while rendering, or in filter arguments.
    Escape("attr-built", "{{ member|attr('_' * 2 ~ 'class' ~ '_' * 2) }}", "__class__", False),
    Escape("item-built", "{{ member['_' * 2 ~ 'class' ~ '_' * 2] }}", "__class__", False),
    Escape(
        "format-built", "{{ ('{0.' ~ '_' * 2 ~ 'class__}').format(member) }}", "__class__", False
    ),
    Escape("map-attribute", "{{ lessons|map(attribute='__class__')|list }}", "__class__", False),
    Escape(
        "sort-attribute",
        "{{ lessons[:1]|sort(attribute='title.__class__')|list }}",
        "__class__",
        False,
    ),
    Escape("groupby", "{{ lessons[:1]|groupby('__class__')|list }}", "__class__", False),
]


@pytest.mark.parametrize("escape", [pytest.param(e, id=e.name) for e in PUBLISHED_ESCAPES])
def test_published_sandbox_escapes_fail_at_render_naming_the_part(
    renderer: TemplateRenderer, escape: Escape
) -> None:
    template = EmailTemplate(subject="Hi", html="<p>Hello</p>\n" + escape.source)

    with pytest.raises(TemplateError) as info:
        renderer.render(template, FULL_CONTEXT)

    error = info.value
    assert (error.field, error.line, error.variable) == ("template.html", 2, escape.refused)
    if escape.refused == "lipsum":
        assert str(error) == "template.html: line 2: unknown variable 'lipsum'"
    else:
        assert str(error).startswith(
            f"template.html: line 2: template tried to reach unsafe attribute {escape.refused!r}"
        )


@pytest.mark.parametrize(
    "escape", [pytest.param(e, id=e.name) for e in PUBLISHED_ESCAPES if e.at_check]
)
def test_published_sandbox_escapes_fail_at_check(
    renderer: TemplateRenderer, escape: Escape
) -> None:
    template = EmailTemplate(subject="Hi", html="<p>Hello</p>\n" + escape.source)

    with pytest.raises(TemplateError) as info:
        renderer.check(template, COMMON_VARIABLES)

    error = info.value
    assert (error.field, error.line) == ("template.html", 2)
    assert error.variable is not None
    assert error.variable.startswith("_")
    assert error.variable in escape.source
    assert f"template tried to reach unsafe attribute {error.variable!r}" in str(error)


@pytest.mark.parametrize("part", ["subject", "html", "text"])
def test_a_sandbox_escape_names_the_part_it_is_in(renderer: TemplateRenderer, part: str) -> None:
    escape = '{{ ("{0.__class__}"|attr("format"))(member) }}'
    template = EmailTemplate(
        **{"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi", part: f"Hi\n{escape}"}
    )

    with pytest.raises(TemplateError) as at_render:
        renderer.render(template, FULL_CONTEXT)
    with pytest.raises(TemplateError) as at_check:
        renderer.check(template, COMMON_VARIABLES)

    for error in (at_render.value, at_check.value):
        assert (error.field, error.line, error.variable) == (f"template.{part}", 2, "__class__")


def test_format_strings_without_unsafe_fields_still_render(renderer: TemplateRenderer) -> None:
    source = (
        '{{ "{0[first_name]} {1:>3}".format(member, 7) }}|'
        '{{ "{m[last_name]}".format_map({"m": member}) }}|{{ "{_x}".format(_x=1) }}|'
        '{{ "{{0.__class__}}".format() }}'
    )
    renderer.check(EmailTemplate(subject="Hi", html=source), COMMON_VARIABLES)
    assert renderer.render_string(source, FULL_CONTEXT, html=False) == (
        "<script>alert(1)</script>   7|Lovelace|1|{0.__class__}"
    )


def test_the_installed_jinja2_has_the_sandbox_fixes() -> None:
    # 3.1.5 fixed CVE-2024-56326 and 3.1.6 CVE-2025-27516; pyproject.toml pins >= 3.1.6.
    assert Version(importlib.metadata.version("jinja2")) >= Version("3.1.6")


def test_sandbox_escape_in_a_condition_fails(renderer: TemplateRenderer) -> None:
    source = "ok\n{% if member.__class__ %}leak{% endif %}"
    with pytest.raises(TemplateError, match="unsafe attribute") as info:
        renderer.render_string(source, FULL_CONTEXT, html=False)
    assert info.value.line == 2


def test_rich_objects_are_refused_in_the_context(renderer: TemplateRenderer) -> None:
    class Member:
        first_name = "Ada"

        def delete(self) -> None:
            raise AssertionError("must never be callable from a template")

    with pytest.raises(ValidationError) as info:
        renderer.render_string("{{ member.first_name }}", {"member": Member()}, html=True)
    assert info.value.field == "context.member"

    with pytest.raises(ValidationError) as info:
        renderer.render_string("", {"lessons": [{"title": object()}]}, html=True)
    assert info.value.field == "context.lessons[0].title"


# -- render() -------------------------------------------------------------------------


def test_render_escapes_html_but_not_subject_or_text(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(
        subject="  Hello\n {{ member.first_name }}  ",
        html="<p>{{ member.first_name }}</p>",
        text="Hi {{ member.first_name }}",
    )

    rendered = renderer.render(template, FULL_CONTEXT)

    assert rendered.subject == "Hello <script>alert(1)</script>"
    assert rendered.html == f"<p>{ESCAPED_NAME}</p>"
    assert rendered.text == "Hi <script>alert(1)</script>"


def test_render_generates_text_from_html_when_there_is_none(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(
        subject="Hi",
        html='<p>Hello {{ member.display_name }}</p><p><a href="{{ login_url }}">Log in</a></p>',
    )

    rendered = renderer.render(template, FULL_CONTEXT)

    assert rendered.text == ("Hello Ada Lovelace\n\nLog in (https://piano.test/login?token=abc)")


def test_render_unknown_variable_names_it_and_the_line(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(subject="Hi", html="<p>\n{{ member.first_name }}\n{{ membr }}</p>")

    with pytest.raises(TemplateError) as info:
        renderer.render(template, FULL_CONTEXT)

    assert (info.value.field, info.value.line, info.value.variable) == (
        "template.html",
        3,
        "membr",
    )
    assert str(info.value) == "template.html: line 3: unknown variable 'membr'"


def test_render_unknown_attribute_is_an_error(renderer: TemplateRenderer) -> None:
    template = EmailTemplate(subject="Hi {{ member.frist_name }}", html="")

    with pytest.raises(TemplateError) as info:
        renderer.render(template, FULL_CONTEXT)

    assert (info.value.field, info.value.variable) == ("template.subject", "frist_name")


def test_render_refuses_an_empty_subject(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.render(EmailTemplate(subject="{{ '' }}  ", html="<p>x</p>"), {})
    assert info.value.field == "template.subject"


def test_template_mistakes_are_template_errors(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.render_string("a\nb\n{{ 1 / 0 }}", {}, html=False)
    assert info.value.line == 3
    with pytest.raises(TemplateError):
        renderer.render_string("{{ member.first_name + 1 }}", FULL_CONTEXT, html=False)


def test_runaway_macro_recursion_is_a_template_error(renderer: TemplateRenderer) -> None:
    source = "{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}\n{{ down(0) }}"
    with pytest.raises(TemplateError, match="too deeply"):
        renderer.render_string(source, {}, html=False)


def test_output_is_capped() -> None:
    renderer = TemplateRenderer(max_output_chars=1_000)
    many = {"lessons": [{"title": "x" * 50, "url": "u"}] * 100}

    with pytest.raises(TemplateError, match="limit of 1000 characters") as info:
        renderer.render(
            EmailTemplate(subject="Hi", html="{% for l in lessons %}{{ l.title }}{% endfor %}"),
            many,
        )
    assert info.value.field == "template.html"

    # Repetition is refused before the huge string exists at all.
    with pytest.raises(TemplateError, match="output limit"):
        renderer.render_string("{{ 'x' * 10**9 }}", {}, html=False)
    with pytest.raises(TemplateError, match="too large"):
        renderer.render_string("{{ 10 ** 1000000 }}", {}, html=False)

    assert renderer.render_string("{{ 'x' * 1000 }}", {}, html=False) == "x" * 1000


def test_render_time_is_capped_even_when_nothing_is_printed() -> None:
    renderer = TemplateRenderer(max_render_seconds=0.05)
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

    with pytest.raises(TemplateError, match="too long"):
        renderer.render_string(source, {}, html=False)


def test_renderer_validates_its_limits() -> None:
    with pytest.raises(ValidationError):
        TemplateRenderer(max_output_chars=0)
    with pytest.raises(ValidationError):
        TemplateRenderer(max_render_seconds=-1)


def test_renderer_is_safe_to_share_between_threads(renderer: TemplateRenderer) -> None:
    template = load_default("welcome")
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for _ in range(20):
                member = {**FULL_CONTEXT["member"], "first_name": f"Member{number}"}
                rendered = renderer.render(template, {**context_for("welcome"), "member": member})
                results.append(rendered.text.splitlines()[0])
        except BaseException as error:  # collected and re-checked on the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(set(results)) == [f"Hi Member{n}," for n in range(6)]


def test_module_level_render_string() -> None:
    assert render_string("<b>{{ t }}</b>", {"t": "A & B"}, html=True) == "<b>A &amp; B</b>"
    assert render_string("{{ t }}", {"t": "A & B"}, html=False) == "A & B"


# -- html_to_text -------------------------------------------------------------------


def test_html_to_text_keeps_links_and_structure() -> None:
    source = """
    <html><head><title>Ignored</title><style>p { color: red }</style></head>
    <body>
      <h1>Welcome</h1>
      <p>Hello   <b>Ada</b>,<br>glad you are here &amp; well.</p>
      <p>Start with <a href="https://x.test/c">the course</a> or
         <a href="mailto:help@x.test">help@x.test</a>.</p>
      <ul><li>One</li><li><a href="https://x.test/2">Two</a></li></ul>
      <ol><li>First</li><li>Second</li></ol>
      <a href="https://x.test/logo"><img src="logo.png" alt="Our logo"></a>
      <a href="https://x.test/raw"></a>
      <a href="#top">Back to top</a>
      <script>alert("no")</script>
    </body></html>
    """

    text = html_to_text(source)

    assert text == (
        "Welcome\n\n"
        "Hello Ada,\nglad you are here & well.\n\n"
        "Start with the course (https://x.test/c) or help@x.test.\n\n"
        "- One\n- Two (https://x.test/2)\n\n"
        "1. First\n2. Second\n\n"
        "Our logo (https://x.test/logo) https://x.test/raw Back to top"
    )


def test_html_to_text_survives_broken_html() -> None:
    text = html_to_text('<p>Unclosed <a href="https://x.test">link <b>bold')
    assert text == "Unclosed link bold (https://x.test)"
    assert html_to_text("") == ""
    assert html_to_text("plain & simple") == "plain & simple"


def test_generated_text_of_defaults_keeps_button_urls(renderer: TemplateRenderer) -> None:
    template = load_default("password_reset")
    rendered = renderer.render(
        EmailTemplate(subject=template.subject, html=template.html), context_for("password_reset")
    )

    assert "Choose a new password (https://piano.test/reset?token=xyz)" in rendered.text
    assert not re.search(r"<[a-z]", rendered.text.replace("<script>", ""))
