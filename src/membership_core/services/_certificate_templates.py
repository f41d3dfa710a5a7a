"""Certificate templates and designs: the admin's part of ``portal.certificates``.

A design is a template's source as certificates were issued with it, stored
once under the hash of its text, so an issued certificate always renders as
it did: editing a template makes a new design and leaves the old ones be.
"""

from __future__ import annotations

import attrs

from .. import _validate as v
from ..domain.catalog import Product
from ..domain.certificates import CertificateDesign, CertificateTemplate, design_id
from ..errors import Conflict
from ..ports.storage import UnitOfWork
from ..templating import TemplateError, TemplateRenderer
from ._certificate_values import default_certificate_template, sample_values
from ._context import Service
from ._unset import UNSET, _Unset

__all__ = ["CertificateTemplates"]

_MAX_SOURCE = 100_000


class CertificateTemplates(Service):
    """Create, check, change, delete and choose certificate templates (a part of
    :class:`~membership_core.services.certificates.CertificatesService`)."""

    _renderer: TemplateRenderer

    def create_template(self, name: str, *, html: str) -> CertificateTemplate:
        """Save a certificate template (Jinja2 HTML), after checking it.

        The source is rendered in the sandbox with sample facts: bad syntax,
        a variable or attribute that does not exist (see
        :data:`CERTIFICATE_VARIABLES`), anything unsafe, or a page that shows
        no way to verify it (the link, the code or the QR code) is a
        :class:`~membership_core.templating.TemplateError` on the field
        ``html`` naming the line; another template of this ``name`` is a
        ``Conflict``. Select it for a product with :meth:`use_template`.
        """
        name = v.text("name", name, max_length=200)
        html = self._checked(html)
        with self._ctx.uow() as uow:
            self._name_free(uow, name, None)
            now = self._ctx.now()
            template = CertificateTemplate(
                self._ctx.ids.new("ctpl"), name, html, self._design(uow, html), now, now
            )
            uow.certificate_templates.add(template)
            uow.commit()
        return template

    def update_template(
        self,
        template_id: str,
        *,
        name: str | _Unset = UNSET,
        html: str | _Unset = UNSET,
    ) -> CertificateTemplate:
        """Change a template's name or source (checked like :meth:`create_template`).

        Certificates issued from it keep what they say: they point at the
        design they were issued with, and only new ones use the new source.
        """
        v.identifier("template_id", template_id, "ctpl")
        clean_name = None if isinstance(name, _Unset) else v.text("name", name, max_length=200)
        clean_html = None if isinstance(html, _Unset) else self._checked(html)
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.certificate_templates, "certificate template", template_id, "template_id"
            )
            if clean_name is not None:
                self._name_free(uow, clean_name, current.id)
            source = current.html if clean_html is None else clean_html
            updated = attrs.evolve(
                current,
                name=clean_name or current.name,
                html=source,
                design_id=self._design(uow, source),
                updated_at=self._ctx.now(),
            )
            if (updated.name, updated.html) != (current.name, current.html):
                uow.certificate_templates.update(updated)
                uow.commit()
                return updated
        return current

    def delete_template(self, template_id: str) -> None:
        """Delete a template; refused (``Conflict``) while a product uses it.

        Certificates issued from it keep their design.
        """
        v.identifier("template_id", template_id, "ctpl")
        with self._ctx.uow() as uow:
            self._require_for_update(
                uow.certificate_templates, "certificate template", template_id, "template_id"
            )
            users = uow.products.find({"certificate_template_id": template_id}, order_by=["title"])
            if users:
                raise Conflict(
                    f"certificate template {template_id!r} is used by "
                    f"{', '.join(repr(p.title) for p in users)}; choose another one first",
                    field="template_id",
                )
            uow.certificate_templates.delete(template_id)
            uow.commit()

    def get_template(self, template_id: str) -> CertificateTemplate:
        """The template, or ``NotFound``."""
        v.identifier("template_id", template_id, "ctpl")
        with self._ctx.uow(write=False) as uow:
            return self._require(
                uow.certificate_templates, "certificate template", template_id, "template_id"
            )

    def list_templates(self) -> list[CertificateTemplate]:
        """The portal's certificate templates, by name."""
        with self._ctx.uow(write=False) as uow:
            return uow.certificate_templates.find(order_by=["name"])

    def preview_template(self, template_id: str) -> str:
        """The template rendered with sample facts, as the admin's edit screen shows it."""
        template = self.get_template(template_id)
        with self._ctx.uow(write=False) as uow:
            base = self._base_url(uow)
        return self._renderer.render_string(template.html, sample_values(base), html=True)

    def use_template(self, product_id: str, template_id: str | None) -> Product:
        """Issue the product's new certificates from ``template_id`` (``None``: the default).

        Certificates already issued keep the design they were issued with.
        """
        v.identifier("product_id", product_id, "prod")
        if template_id is not None:
            v.identifier("template_id", template_id, "ctpl")
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            if template_id is not None:
                self._require(
                    uow.certificate_templates, "certificate template", template_id, "template_id"
                )
            if product.certificate_template_id == template_id:
                return product
            product = attrs.evolve(
                product, certificate_template_id=template_id, updated_at=self._ctx.now()
            )
            uow.products.update(product)
            uow.commit()
        return product

    def _checked(self, html: object) -> str:
        source = v.text("html", html, max_length=_MAX_SOURCE)
        sample = sample_values("https://members.example.com")
        try:
            self._renderer.check_string(source, ["certificate"], html=True)
            rendered = self._renderer.render_string(source, sample, html=True)
        except TemplateError as error:
            problem = error.problem
            if error.line is not None:
                problem = problem.removeprefix(f"line {error.line}: ")
            raise TemplateError("html", problem, line=error.line, variable=error.variable) from None
        values = sample["certificate"]
        if not any(
            str(values[name]) in rendered
            for name in ("verification_url", "verification_code", "qr_svg", "qr_data_uri")
        ):
            raise TemplateError(
                "html",
                "shows no way to verify the certificate: use certificate.verification_url, "
                "certificate.verification_code or certificate.qr_svg",
            )
        return source

    @staticmethod
    def _name_free(uow: UnitOfWork, name: str, own_id: str | None) -> None:
        clash = uow.certificate_templates.find({"name": name}, limit=1)
        if clash and clash[0].id != own_id:
            raise Conflict(f"a certificate template is already named {name!r}", field="name")

    def _design(self, uow: UnitOfWork, html: str) -> str:
        """The id of the design of ``html``, adding the design if it is new."""
        identifier = design_id(html)
        if uow.certificate_designs.get(identifier) is None:
            uow.certificate_designs.add(CertificateDesign(identifier, html, self._ctx.now()))
        return identifier

    def _design_for(self, uow: UnitOfWork, product: Product) -> str:
        if product.certificate_template_id is not None:
            template = uow.certificate_templates.get(product.certificate_template_id)
            if template is not None:
                return template.design_id
        return self._design(uow, default_certificate_template())
