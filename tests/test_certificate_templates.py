"""Certificate templates: checked when saved, sandboxed, per product, with a QR code; and
what an issued certificate says never changes."""

from __future__ import annotations

import sys
from typing import Any, cast

import pytest

from membership_core import ConfigurationError, Conflict, NotFound, ValidationError
from membership_core.services.certificates import CERTIFICATE_VARIABLES
from membership_core.templating import TemplateError
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course

GOOD = (
    "<h1>{{ certificate.recipient_name }}</h1><p>{{ certificate.course_title }}</p>"
    '<a href="{{ certificate.verification_url }}">verify</a>'
)


def _complete(portal: TestPortal, product_id: str, lesson_id: str, email: str) -> str:
    offer = portal.offers.publish(portal.offers.create_offer(email, [product_id]).id)
    member = portal.checkout.purchase(
        offer.id, email=email, first_name="Ada", last_name="Lovelace"
    ).member_id
    portal.progress.complete_lesson(member, lesson_id)
    (certificate,) = portal.certificates.for_member(member)
    return certificate.id


def test_the_default_certificate_has_every_fact_and_a_qr_code(open_portal: PortalFactory) -> None:
    portal = open_portal(platform_url="https://learn.acme.test")
    portal.settings.update_site(title="Acme & Co")
    course = build_course(portal, lessons=1, title="Knitting <Socks>")
    portal.catalog.update_product(course.product.id, description="Heels & toes.")
    certificate_id = _complete(portal, course.product.id, course.lessons[0].id, "a@example.com")
    certificate = portal.certificates.get(certificate_id)
    html = portal.certificates.render_html(certificate_id)
    url = portal.certificates.verification_url(certificate_id)
    assert "Ada Lovelace" in html
    assert "Knitting &lt;Socks&gt;" in html  # escaped, not markup
    assert "Acme &amp; Co" in html
    assert "Heels &amp; toes." in html
    assert certificate.serial in html
    assert portal.certificates.verification_code(certificate_id) in html
    assert f'href="{url}"' in html
    assert "<svg" in html  # the QR code, inline
    assert f"{certificate.completed_at.day} January 2026" in html


def test_a_product_uses_its_own_template(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    other = build_course(portal, lessons=1, title="Other")
    template = portal.certificates.create_template(" Branded ", html=GOOD)
    assert template.name == "Branded"
    assert portal.certificates.list_templates() == [template]
    assert portal.certificates.get_template(template.id) == template
    product = portal.certificates.use_template(course.product.id, template.id)
    assert product.certificate_template_id == template.id
    branded = _complete(portal, course.product.id, course.lessons[0].id, "a@example.com")
    plain = _complete(portal, other.product.id, other.lessons[0].id, "b@example.com")
    assert portal.certificates.render_html(branded).startswith("<h1>Ada Lovelace</h1>")
    assert "Certificate of Completion" in portal.certificates.render_html(plain)
    preview = portal.certificates.preview_template(template.id)
    assert preview.startswith("<h1>Ada Lovelace</h1><p>Sample course</p>")
    # back to the default for new certificates
    assert portal.certificates.use_template(course.product.id, None).certificate_template_id is None


def test_issued_facts_never_change(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme Academy")
    course = build_course(portal, lessons=1, title="Knitting")
    template = portal.certificates.create_template("Branded", html=GOOD)
    portal.certificates.use_template(course.product.id, template.id)
    certificate_id = _complete(portal, course.product.id, course.lessons[0].id, "a@example.com")
    before = portal.certificates.render_html(certificate_id)
    code = portal.certificates.verification_code(certificate_id)

    portal.certificates.update_template(template.id, html="<b>NEW</b> " + GOOD)
    portal.catalog.update_product(course.product.id, title="Crochet", description="Other")
    portal.settings.update_site(title="Globex")
    member = portal.certificates.get(certificate_id).member_id
    portal.members.update(member, first_name="Bob")

    assert portal.certificates.render_html(certificate_id) == before
    assert portal.certificates.verification_code(certificate_id) == code
    facts = portal.certificates.verify(code).facts
    assert facts is not None
    assert (facts.recipient_name, facts.course_title, facts.issuer_name) == (
        "Ada Lovelace",
        "Knitting",
        "Acme Academy",
    )
    # ...even once the template is gone
    portal.certificates.use_template(course.product.id, None)
    portal.certificates.delete_template(template.id)
    assert portal.certificates.render_html(certificate_id) == before
    # new certificates say what is true now
    newer = _complete(portal, course.product.id, course.lessons[0].id, "b@example.com")
    assert "Crochet" in portal.certificates.render_html(newer)


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("{{ certificate.recipient_name", "syntax error"),
        ("{{ member.email }} {{ certificate.verification_url }}", "unknown variable 'member'"),
        (
            "{{ certificate.serail }} {{ certificate.verification_url }}",
            "unknown attribute 'serail'",
        ),
        ("{{ certificate.__class__ }} {{ certificate.verification_url }}", "unsafe attribute"),
        (
            "{{ certificate.qr_svg.__html__() }} {{ certificate.verification_url }}",
            "unsafe attribute",
        ),
        ("{{ ''.__class__.__mro__ }} {{ certificate.verification_url }}", "unsafe attribute"),
        (
            "{{ certificate|attr('__init__') }} {{ certificate.verification_url }}",
            "unsafe attribute",
        ),
        (
            "{{ '{0.__class__}'.format(certificate) }} {{ certificate.verification_url }}",
            "unsafe attribute",
        ),
        ("{% include 'x.html' %} {{ certificate.verification_url }}", "include"),
        ("{% for i in range(10**9) %}{% endfor %}{{ certificate.verification_url }}", "range"),
        ("{{ 'x' * 10**8 }} {{ certificate.verification_url }}", "limit"),
        ("<h1>{{ certificate.recipient_name }}</h1>", "no way to verify"),
        ("", "must not be empty"),
    ],
)
def test_templates_are_checked_in_the_sandbox_when_saved(
    open_portal: PortalFactory, html: str, message: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError, match=message) as caught:
        portal.certificates.create_template("Bad", html=html)
    assert caught.value.field == "html"
    assert portal.certificates.list_templates() == []
    good = portal.certificates.create_template("Good", html=GOOD)
    with pytest.raises(ValidationError, match=message):
        portal.certificates.update_template(good.id, html=html)
    assert portal.certificates.get_template(good.id) == good


def test_template_errors_name_the_line(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(TemplateError) as caught:
        portal.certificates.create_template(
            "Bad", html="<p>{{ certificate.verification_url }}</p>\n<p>{{ certficate.serial }}</p>"
        )
    assert caught.value.line == 2
    assert caught.value.variable == "certficate"
    assert "did you mean 'certificate'" in str(caught.value)


def test_every_variable_can_be_used(open_portal: PortalFactory) -> None:
    portal = open_portal()
    html = " ".join(f"{{{{ certificate.{name} }}}}" for name in CERTIFICATE_VARIABLES)
    template = portal.certificates.create_template("All", html=html)
    assert "<svg" in portal.certificates.preview_template(template.id)


def test_template_names_use_and_deletion(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    first = portal.certificates.create_template("First", html=GOOD)
    second = portal.certificates.create_template("Second", html=GOOD)
    assert first.design_id == second.design_id  # one snapshot of one source
    with pytest.raises(Conflict) as caught:
        portal.certificates.create_template("first ".strip().title(), html=GOOD)
    assert caught.value.field == "name"
    with pytest.raises(Conflict):
        portal.certificates.update_template(second.id, name="First")
    renamed = portal.certificates.update_template(second.id, name="Third")
    assert renamed.name == "Third"
    assert portal.certificates.update_template(second.id) == renamed  # nothing to change
    portal.certificates.use_template(course.product.id, first.id)
    with pytest.raises(Conflict, match="Python 101") as caught:
        portal.certificates.delete_template(first.id)
    assert caught.value.field == "template_id"
    portal.certificates.delete_template(second.id)
    assert [t.id for t in portal.certificates.list_templates()] == [first.id]
    for call in (
        lambda: portal.certificates.get_template("ctpl_nope"),
        lambda: portal.certificates.update_template("ctpl_nope", name="x"),
        lambda: portal.certificates.delete_template("ctpl_nope"),
        lambda: portal.certificates.preview_template("ctpl_nope"),
        lambda: portal.certificates.use_template(course.product.id, "ctpl_nope"),
        lambda: portal.certificates.use_template("prod_nope", None),
    ):
        with pytest.raises(NotFound):
            call()
    for call, field in (
        (lambda: portal.certificates.get_template("tpl_x"), "template_id"),
        (lambda: portal.certificates.use_template(course.product.id, "x"), "template_id"),
        (lambda: portal.certificates.create_template("", html=GOOD), "name"),
        (lambda: portal.certificates.create_template("x", html=cast(Any, 3)), "html"),
        (lambda: portal.certificates.create_template("x", html="x" * 100_001), "html"),
    ):
        with pytest.raises(ValidationError) as error:
            call()
        assert error.value.field == field
    assert portal.certificates.get_template(first.id) == first


def test_rendering_without_the_extra_names_it(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    certificate_id = _complete(portal, course.product.id, course.lessons[0].id, "a@example.com")
    monkeypatch.setitem(sys.modules, "segno", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"membership_core\[certificates\]"):
        portal.certificates.render_html(certificate_id)
    with pytest.raises(ConfigurationError, match=r"membership_core\[certificates\]"):
        portal.certificates.create_template("x", html=GOOD)
    # issuing and verifying need no extra
    assert portal.certificates.verify(portal.certificates.get(certificate_id).serial).facts
