"""Render admin-authored email templates safely.

Portal admins write the subject, HTML body and (optionally) text body of every
automated email in Jinja2. Those templates run in an
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`: they can read the data
they are given, loop, branch and filter, but cannot reach Python internals
(``{{ ''.__class__ }}`` is refused), call ``str.format`` on attributes, or
mutate anything. HTML bodies are autoescaped, so a member who calls
themselves ``<script>`` is shown, not run. Unknown variables are errors
(:class:`~jinja2.StrictUndefined`), never silent empty strings, and
:meth:`TemplateRenderer.check` catches them when the admin saves the template,
naming the line.

Context convention
------------------

Every email is rendered from plain data: ``dict``, ``list``, ``str``, numbers,
booleans and ``None``, never rich objects (:meth:`TemplateRenderer.render`
refuses anything else, so an ORM object with side-effecting methods cannot
leak in). The top-level names, listed in :data:`COMMON_VARIABLES`, are:

``member``
    ``{"first_name", "last_name", "email", "display_name"}``, all strings
    (``first_name`` and ``last_name`` may be empty).
``portal``
    ``{"title", "url", "logo_url"}``; ``logo_url`` may be ``None``.
``course``
    ``{"title", "url"}``: the product the email is about.
``offer``
    ``{"title", "url"}``: the offer that was bought or granted.
``lessons``
    a list of ``{"title", "url"}``: lessons just unlocked or added.
``comment``
    ``{"author", "body", "url"}``: a new comment (``body`` is plain text).
``certificate``
    ``{"serial", "verification_url"}``: a certificate just issued.
``login_url``
    a one-time or plain login link.
``login_code``
    the short sign-in code that travels with a one-time login link.
``reset_url``
    a password-reset link.

A given email only receives the names it needs; :data:`DEFAULT_TEMPLATE_VARIABLES`
lists, for each shipped default, the names its sender must provide. Optional
values are tested with ``is defined`` (``{% if certificate is defined and
certificate %}``), because plain ``{% if certificate %}`` on a missing name is
an error under ``StrictUndefined``.

Limits
------

A :class:`TemplateRenderer` stops a render whose output grows past
``max_output_chars`` or that runs longer than ``max_render_seconds``. The
time is checked between output chunks, on every attribute access, call and
``range()`` step, and repetition (``'x' * 10**9``) and exponentiation are
capped before they run. A single long-running expression (a huge format
width, a filter given an enormous argument, nested loops over large strings
that print nothing) cannot be interrupted in-process, though: the sandbox and
the output cap are the main guards, admins are authenticated staff, and a host
that must render templates from less trusted authors should render in a
worker process with OS-level memory and CPU limits.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import math
import re
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping, Sequence
from html.parser import HTMLParser
from importlib import resources
from types import MappingProxyType, TracebackType
from typing import Any, NoReturn, overload

import attrs
import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.runtime
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

from .errors import ValidationError

__all__ = [
    "COMMON_VARIABLES",
    "DEFAULT_TEMPLATES",
    "DEFAULT_TEMPLATE_VARIABLES",
    "EmailTemplate",
    "RenderedEmail",
    "TemplateError",
    "TemplateRenderer",
    "html_to_text",
    "load_default",
    "render_string",
]

COMMON_VARIABLES: tuple[str, ...] = (
    "member",
    "portal",
    "course",
    "offer",
    "lessons",
    "comment",
    "certificate",
    "login_url",
    "login_code",
    "reset_url",
)
"""The top-level names an email template may use (see the module docstring)."""

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "welcome",
    "drip",
    "offer_access",
    "new_comment",
    "new_materials",
    "password_reset",
    "magic_link",
    "course_completed",
)
"""The names of the email templates shipped with the library."""

DEFAULT_TEMPLATE_VARIABLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "welcome": ("member", "portal", "login_url"),
        "drip": ("member", "portal", "course", "lessons"),
        "offer_access": ("member", "portal", "offer"),
        "new_comment": ("member", "portal", "comment"),
        "new_materials": ("member", "portal", "course", "lessons"),
        "password_reset": ("member", "portal", "reset_url"),
        "magic_link": ("member", "portal", "login_url", "login_code"),
        "course_completed": ("member", "portal", "course"),
    }
)
"""For each default template, the names its context must provide.

``new_comment`` also uses ``course`` and ``course_completed`` uses
``certificate`` when they are given.
"""

_PACKAGE = "membership_core"
_TEMPLATE_FILENAME = "<template>"
_PARTS = ("subject", "html", "text")
# Plain data only: anything else could carry methods with side effects.
_PLAIN_SCALARS = (str, int, float, bool, type(None))
_MAX_CONTEXT_DEPTH = 20
# How many compiled templates each renderer keeps; compiling costs far more
# than rendering, and a portal has only a few dozen templates.
_CACHE_SIZE = 256
# Bits of an integer power result; far beyond any number an email shows.
_MAX_POWER_BITS = 4096
_RANGE_CHECK_EVERY = 1024

_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_UNDEFINED_ATTRIBUTE = re.compile(r"has no (?:attribute|element) (?P<name>.+)$")
_UNSAFE_ATTRIBUTE = re.compile(r"access to attribute '(?P<name>[^']+)' of '(?P<type>[^']+)'")

# The render deadline (time.monotonic) of the render running in this context;
# a context variable so one renderer can serve several threads at once.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar(
    "membership_core_template_deadline", default=math.inf
)


class TemplateError(ValidationError):
    """A template cannot be used: bad syntax, an unknown or unsafe name, or a limit hit.

    ``field`` names the template part (``"template.subject"``,
    ``"template.html"``, ``"template.text"``, or ``"template"`` for
    :meth:`TemplateRenderer.render_string`); ``line`` is the 1-based line in
    that part when known, and ``variable`` the offending name when there is
    one. The message reads like ``template.html: line 3: unknown variable
    'membr'``.
    """

    def __init__(
        self,
        field: str,
        problem: str,
        *,
        line: int | None = None,
        variable: str | None = None,
    ) -> None:
        super().__init__(field, f"line {line}: {problem}" if line is not None else problem)
        self.line = line
        self.variable = variable


@attrs.frozen
class EmailTemplate:
    """The Jinja2 sources of one email.

    ``text`` is optional: when ``None`` the plain-text part is generated from
    the rendered HTML (see :func:`html_to_text`).
    """

    subject: str
    html: str
    text: str | None = None


@attrs.frozen
class RenderedEmail:
    """The rendered parts of one email, ready to go into an ``EmailMessage``."""

    subject: str
    html: str
    text: str


class _Limit(Exception):
    """Raised inside a render when a limit is hit; becomes a TemplateError."""


def _check_deadline() -> None:
    if time.monotonic() > _DEADLINE.get():
        raise _Limit("took too long to render")


class _CheckedRange(Sequence[int]):
    """``range`` for templates: the sandbox's size cap plus a deadline check while iterating."""

    def __init__(self, inner: range) -> None:
        self._inner = inner

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> _CheckedRange: ...
    def __getitem__(self, index: int | slice) -> int | _CheckedRange:
        if isinstance(index, slice):
            return _CheckedRange(self._inner[index])
        return self._inner[index]

    def __len__(self) -> int:
        return len(self._inner)

    def __contains__(self, value: object) -> bool:
        return value in self._inner

    def __iter__(self) -> Iterator[int]:
        for position, value in enumerate(self._inner):
            # Loops that print nothing never reach the between-chunks check.
            if position % _RANGE_CHECK_EVERY == 0:
                _check_deadline()
            yield value

    def __repr__(self) -> str:
        return repr(self._inner)


def _template_range(*args: int) -> _CheckedRange:
    inner = range(*args)
    if len(inner) > MAX_RANGE:
        raise _Limit(f"range() of {len(inner)} items is larger than the limit of {MAX_RANGE}")
    return _CheckedRange(inner)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus deadline checks and caps on runaway arithmetic.

    An unsafe attribute is refused where it is reached (see :meth:`unsafe_undefined`).
    """

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *, autoescape: bool, max_output_chars: int) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=jinja2.StrictUndefined,
            # Without these, an admin's indentation shows up in every email.
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.max_output_chars = max_output_chars
        # lipsum has no place in a real email and can produce megabytes.
        self.globals.pop("lipsum", None)
        self.globals["range"] = _template_range

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        """Refuse repetition or powers whose result would dwarf any email."""
        _check_deadline()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > self.max_output_chars
                ):
                    raise _Limit(
                        f"repeating a value {count} times exceeds the output limit of "
                        f"{self.max_output_chars} characters"
                    )
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right * max(abs(left).bit_length() - 1, 0) > _MAX_POWER_BITS
        ):
            raise _Limit("number too large")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        """Refuse an unsafe attribute where it is reached.

        Jinja returns an undefined value that only raises when used, and some
        uses never touch it: ``lessons|map(attribute='__class__')`` would print
        ``[Undefined]``, and ``|attr`` chained on it reports the next name as
        unknown instead of the unsafe one.
        """
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Look up an attribute, as the sandbox allows, within the time limit."""
        _check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Look up an item, as the sandbox allows, within the time limit."""
        _check_deadline()
        return super().getitem(obj, argument)

    def call(
        __self,  # noqa: N805 - mirrors the base class, which avoids clashing with kwargs
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Call a function, as the sandbox allows, within the time limit."""
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)


class TemplateRenderer:
    """Checks and renders :class:`EmailTemplate` sources in the sandbox.

    One renderer can be shared by every thread of a process; it keeps a small
    cache of compiled templates. Block tags swallow the newline after them and
    the indentation before them (Jinja's ``trim_blocks`` and
    ``lstrip_blocks``), so ``{% if %}`` lines leave no blank lines or stray
    spaces in the email. ``max_output_chars`` caps each rendered part;
    ``max_render_seconds`` caps one whole :meth:`render` call (see the module
    docstring for what the time limit can and cannot stop).

    >>> renderer = TemplateRenderer()
    >>> template = EmailTemplate(subject="Hi {{ name }}", html="<p>{{ name }}</p>")
    >>> email = renderer.render(template, {"name": "<Ada>"})
    >>> email.subject, email.html, email.text
    ('Hi <Ada>', '<p>&lt;Ada&gt;</p>', '<Ada>')
    """

    def __init__(self, *, max_output_chars: int = 200_000, max_render_seconds: float = 2.0) -> None:
        if (
            isinstance(max_output_chars, bool)
            or not isinstance(max_output_chars, int)
            or max_output_chars < 1
        ):
            raise ValidationError("max_output_chars", "must be a positive integer")
        if (
            isinstance(max_render_seconds, bool)
            or not isinstance(max_render_seconds, int | float)
            or not math.isfinite(max_render_seconds)
            or max_render_seconds <= 0
        ):
            raise ValidationError("max_render_seconds", "must be a positive number of seconds")
        self._max_output_chars = max_output_chars
        self._max_render_seconds = float(max_render_seconds)
        self._html_env = _Sandbox(autoescape=True, max_output_chars=max_output_chars)
        self._text_env = _Sandbox(autoescape=False, max_output_chars=max_output_chars)
        self._cache: OrderedDict[tuple[bool, str], jinja2.Template] = OrderedDict()
        self._variables: OrderedDict[EmailTemplate, frozenset[str]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def max_output_chars(self) -> int:
        """The largest number of characters one rendered part may have."""
        return self._max_output_chars

    @property
    def max_render_seconds(self) -> float:
        """How long one :meth:`render` call may take, in seconds."""
        return self._max_render_seconds

    # -- checking -----------------------------------------------------------

    def variables(self, template: EmailTemplate) -> frozenset[str]:
        """The top-level names ``template`` uses, in any part.

        Lets a sender compute only what a template asks for (a one-time login
        link, say). Raises :class:`TemplateError` when a part does not parse.

        >>> TemplateRenderer().variables(
        ...     EmailTemplate(subject="Hi {{ member.first_name }}", html="{{ login_url }}")
        ... ) == {"member", "login_url"}
        True
        """
        with self._cache_lock:
            known = self._variables.get(template)
        if known is not None:
            return known
        names: set[str] = set()
        for part in _PARTS:
            source = getattr(template, part)
            if source is None:
                continue
            field = f"template.{part}"
            env = self._html_env if part == "html" else self._text_env
            try:
                names |= jinja2.meta.find_undeclared_variables(_parse(env, field, source))
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(field, exc.message or str(exc), line=exc.lineno) from None
        found = frozenset(names)
        with self._cache_lock:
            self._variables[template] = found
            while len(self._variables) > _CACHE_SIZE:
                self._variables.popitem(last=False)
        return found

    def check(self, template: EmailTemplate, allowed_variables: Collection[str]) -> None:
        """Raise :class:`TemplateError` unless every part of ``template`` is usable.

        Meant for the moment an admin saves a template: each part must parse,
        may only use top-level names in ``allowed_variables`` (usually
        :data:`COMMON_VARIABLES` or the subset the email receives), must not
        touch attributes starting with ``_`` (nor name one in a format string
        given to ``str.format`` or ``format_map``), and must not ``include``,
        ``import`` or ``extend`` other templates. The error names the part,
        the line and the variable. Passing the check does not guarantee a
        render succeeds (an attribute may still be missing from the data),
        but it catches typos before any member gets the email.
        """
        allowed = _names("allowed_variables", allowed_variables)
        for part in _PARTS:
            source = getattr(template, part)
            if source is None:
                continue
            env = self._html_env if part == "html" else self._text_env
            self._check_source(f"template.{part}", source, env, allowed)

    def check_string(self, source: str, allowed_variables: Collection[str], *, html: bool) -> None:
        """Like :meth:`check`, for one template source (a certificate, say)."""
        allowed = _names("allowed_variables", allowed_variables)
        self._check_source("template", source, self._env(html), allowed)

    def _check_source(
        self, field: str, source: str, env: _Sandbox, allowed: frozenset[str]
    ) -> None:
        if not isinstance(source, str):
            raise ValidationError(field, f"must be a string, not {type(source).__name__}")
        ast = _parse(env, field, source)
        _check_static(field, ast)
        try:
            undeclared = jinja2.meta.find_undeclared_variables(ast)
        except jinja2.TemplateSyntaxError as exc:  # includes TemplateAssertionError
            raise TemplateError(field, exc.message or str(exc), line=exc.lineno) from None
        unknown = sorted(
            (_first_line(ast, name), name) for name in undeclared if name not in allowed
        )
        if unknown:
            line, name = unknown[0]
            problem = f"unknown variable {name!r}"
            suggestion = difflib.get_close_matches(name, sorted(allowed), n=1)
            if suggestion:
                problem += f" (did you mean {suggestion[0]!r}?)"
            if len(unknown) > 1:
                problem += "; also unknown: " + ", ".join(repr(n) for _, n in unknown[1:])
            raise TemplateError(field, problem, line=line, variable=name)
        # Compiling catches what parsing does not, such as an unknown filter.
        self._compile(field, source, env)

    # -- rendering ----------------------------------------------------------

    def render(self, template: EmailTemplate, context: Mapping[str, object]) -> RenderedEmail:
        """Render every part of ``template`` with ``context``.

        The subject is rendered without escaping and collapsed to one line;
        the HTML is autoescaped; the text is rendered from ``template.text``
        or, when that is ``None``, generated from the rendered HTML. Raises
        :class:`TemplateError` for an unknown variable, an unsafe attribute, a
        template error, an empty subject, or a limit exceeded, and
        :class:`~membership_core.errors.ValidationError` (field
        ``context...``) when the context holds anything but plain data.
        """
        _check_context(context)
        token = _DEADLINE.set(time.monotonic() + self._max_render_seconds)
        try:
            raw_subject = self._render("template.subject", template.subject, context, html=False)
            subject = " ".join(raw_subject.split())
            if not subject:
                raise TemplateError("template.subject", "renders to an empty subject")
            body = self._render("template.html", template.html, context, html=True)
            if template.text is None:
                text = html_to_text(body)
            else:
                text = self._render("template.text", template.text, context, html=False).strip()
        finally:
            _DEADLINE.reset(token)
        return RenderedEmail(subject=subject, html=body, text=text)

    def render_string(self, source: str, context: Mapping[str, object], *, html: bool) -> str:
        """Render one template source; autoescaped when ``html`` is true.

        Same sandbox, limits and errors as :meth:`render`, with errors on the
        field ``"template"``.
        """
        _check_context(context)
        token = _DEADLINE.set(time.monotonic() + self._max_render_seconds)
        try:
            return self._render("template", source, context, html=html)
        finally:
            _DEADLINE.reset(token)

    def _render(self, field: str, source: str, context: Mapping[str, object], *, html: bool) -> str:
        if not isinstance(source, str):
            raise ValidationError(field, f"must be a string, not {type(source).__name__}")
        compiled = self._compile(field, source, self._env(html))
        chunks: list[str] = []
        size = 0
        try:
            # generate() rather than render(): it yields between statements, which
            # is where size and time can be checked without waiting for the end.
            for chunk in compiled.generate(dict(context)):
                chunks.append(chunk)
                size += len(chunk)
                if size > self._max_output_chars:
                    raise _Limit(
                        f"output is larger than the limit of {self._max_output_chars} characters"
                    )
                _check_deadline()
        except Exception as exc:  # every template failure becomes a TemplateError (or re-raises)
            _raise_render_error(field, exc)
        return "".join(chunks)

    def _env(self, html: bool) -> _Sandbox:
        return self._html_env if html else self._text_env

    def _compile(self, field: str, source: str, env: _Sandbox) -> jinja2.Template:
        key = (env is self._html_env, source)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            compiled = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                field, f"syntax error: {exc.message or exc}", line=exc.lineno
            ) from None
        with self._cache_lock:
            self._cache[key] = compiled
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled


def _names(field: str, names: Collection[str]) -> frozenset[str]:
    # A bare string is a Collection[str] too, and "member" would then allow "m".
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValidationError(field, "must be a collection of variable names")
    return frozenset(names)


def _parse(env: _Sandbox, field: str, source: str) -> jinja2.nodes.Template:
    try:
        return env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(field, f"syntax error: {exc.message or exc}", line=exc.lineno) from None


def _check_static(field: str, ast: jinja2.nodes.Template) -> None:
    """Refuse at save time what would fail (or be refused) at render time."""
    for ref in ast.find_all(
        (jinja2.nodes.Extends, jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport)
    ):
        keyword = {
            jinja2.nodes.Extends: "extends",
            jinja2.nodes.Include: "include",
            jinja2.nodes.Import: "import",
            jinja2.nodes.FromImport: "from ... import",
        }[type(ref)]
        raise TemplateError(
            field,
            f"{{% {keyword} %}} is not available: an email template must be self-contained",
            line=ref.lineno,
        )
    uses_format = False
    for node in ast.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem, jinja2.nodes.Filter)):
        name = _attribute_name(node)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateError(
                field,
                f"template tried to reach unsafe attribute {name!r}",
                line=node.lineno,
                variable=name,
            )
        uses_format = uses_format or (isinstance(name, str) and name in _FORMAT_METHODS)
    if not uses_format:
        return
    # str.format looks attributes up itself, from the format string: a string
    # in the template is data, but one that is written out can be read here.
    for const in ast.find_all(jinja2.nodes.Const):
        if isinstance(const.value, str):
            unsafe = _unsafe_format_field(const.value)
            if unsafe is not None:
                raise TemplateError(
                    field,
                    f"template tried to reach unsafe attribute {unsafe!r} in a format string",
                    line=const.lineno,
                    variable=unsafe,
                )


_FORMAT_METHODS = frozenset({"format", "format_map"})
# The arg name of a str.format replacement field, then its ".attribute" and "[index]" parts.
_FIELD_ARG = re.compile(r"[^.\[]*")
_FIELD_PART = re.compile(r"\.([^.\[]*)|\[([^\]]*)\]")


def _attribute_name(node: jinja2.nodes.Node) -> object:
    """The attribute (or key) ``node`` looks up, when the template spells it out."""
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr
    if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Const):
        return node.arg.value
    if (
        isinstance(node, jinja2.nodes.Filter)
        and node.name == "attr"
        and node.args
        and isinstance(node.args[0], jinja2.nodes.Const)
    ):
        return node.args[0].value
    return None


def _unsafe_format_field(source: str) -> str | None:
    """The first name starting with ``_`` that formatting with ``source`` would look up."""
    try:
        return next((n for n in _format_lookups(source) if n.startswith("_")), None)
    except ValueError:  # not a valid format string: str.format refuses it at render
        return None


def _format_lookups(source: str) -> Iterator[str]:
    """The attribute and index names in the replacement fields of ``source``."""
    for _text, field, spec, _conversion in string.Formatter().parse(source):
        if field:
            start = _FIELD_ARG.match(field)
            for part in _FIELD_PART.finditer(field, start.end() if start else 0):
                yield part[1] if part[1] is not None else part[2]
        if spec:  # a format spec may hold replacement fields of its own
            yield from _format_lookups(spec)


def _first_line(ast: jinja2.nodes.Template, name: str) -> int:
    lines = [
        node.lineno
        for node in ast.find_all(jinja2.nodes.Name)
        if node.name == name and node.ctx == "load"
    ]
    return min(lines, default=1)


def _template_line(tb: TracebackType | None) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry the template's
    # own line numbers; the innermost such frame is where the error happened.
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _raise_render_error(field: str, exc: Exception) -> NoReturn:
    line = _template_line(exc.__traceback__)
    if isinstance(exc, TemplateError):
        raise exc
    if isinstance(exc, SecurityError):
        message = str(exc)
        match = _UNSAFE_ATTRIBUTE.search(message)
        if match:
            problem = (
                f"template tried to reach unsafe attribute {match['name']!r} "
                f"of a {match['type']!r} value"
            )
            variable: str | None = match["name"]
        else:
            problem = f"template tried to reach unsafe attribute or call: {message}"
            variable = None
        raise TemplateError(field, problem, line=line, variable=variable) from None
    if isinstance(exc, jinja2.UndefinedError):
        message = str(exc)
        name_match = _UNDEFINED_NAME.match(message)
        if name_match:
            name = name_match["name"]
            raise TemplateError(
                field, f"unknown variable {name!r}", line=line, variable=name
            ) from None
        attr_match = _UNDEFINED_ATTRIBUTE.search(message)
        if attr_match:
            name = attr_match["name"].strip("'")
            raise TemplateError(
                field, f"unknown attribute {name!r} ({message})", line=line, variable=name
            ) from None
        raise TemplateError(field, message, line=line) from None
    if isinstance(exc, _Limit):
        raise TemplateError(field, str(exc), line=line) from None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        raise TemplateError(field, f"syntax error: {exc.message or exc}", line=exc.lineno) from None
    if isinstance(exc, RecursionError):
        raise TemplateError(field, "macros call each other too deeply", line=line) from None
    if isinstance(
        exc, jinja2.TemplateError | TypeError | ValueError | ArithmeticError | LookupError
    ):
        # Admin-authored code dividing by zero or adding a string to a number
        # is a template problem to report, not a crash of the caller.
        raise TemplateError(field, f"{type(exc).__name__}: {exc}", line=line) from None
    raise exc


def _check_context(context: Mapping[str, object]) -> None:
    if not isinstance(context, Mapping):
        raise ValidationError("context", f"must be a mapping, not {type(context).__name__}")
    for key, value in context.items():
        if not isinstance(key, str):
            raise ValidationError("context", f"keys must be strings, not {key!r}")
        _check_plain(f"context.{key}", value, 0)


def _check_plain(path: str, value: object, depth: int) -> None:
    if depth > _MAX_CONTEXT_DEPTH:
        raise ValidationError(path, "is nested too deeply (or refers to itself)")
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(f"{path}[{index}]", item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, f"keys must be strings, not {key!r}")
            _check_plain(f"{path}.{key}", item, depth + 1)
        return
    raise ValidationError(
        path,
        f"{type(value).__name__} is not plain data; pass str, int, float, bool, None, "
        "list or dict (format dates and money before rendering)",
    )


@functools.cache
def _default_renderer() -> TemplateRenderer:
    # Created on first use, not at import, and shared: a renderer is thread-safe.
    return TemplateRenderer()


def render_string(source: str, context: Mapping[str, object], *, html: bool) -> str:
    """Render one template source with a shared, default-limited :class:`TemplateRenderer`.

    A shortcut for :meth:`TemplateRenderer.render_string` when the default
    limits suit (certificate pages, one-off snippets).

    >>> render_string("<b>{{ name }}</b>", {"name": "A & B"}, html=True)
    '<b>A &amp; B</b>'
    """
    return _default_renderer().render_string(source, context, html=html)


# -- HTML to text -------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
        "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_SKIP_TAGS = frozenset({"head", "script", "style", "title", "template", "noscript"})
_CELL_TAGS = frozenset({"td", "th"})
_PARAGRAPH = "\x00P"
_NEWLINE = "\x00N"


class _TextExtractor(HTMLParser):
    """Collects readable text from an HTML email, keeping link targets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        # For each open <a>: its href and where its text starts in ``parts``.
        self._links: list[tuple[str | None, int]] = []
        self._lists: list[list[int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        attributes = dict(attrs)
        if tag in _BLOCK_TAGS:
            self.parts.append(_PARAGRAPH)
            if tag in ("ul", "ol"):
                # A counter for <ol>; <ul> items get a dash.
                self._lists.append([0] if tag == "ol" else [])
        elif tag == "br":
            self.parts.append(_NEWLINE)
        elif tag == "li":
            self.parts.append(_NEWLINE)
            counter = self._lists[-1] if self._lists else []
            if counter:
                counter[0] += 1
                self.parts.append(f"{counter[0]}. ")
            else:
                self.parts.append("- ")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")
        elif tag == "a":
            self._links.append((attributes.get("href"), len(self.parts)))
        elif tag == "img" and self._links:
            # An image link (a logo, an image button) needs words to stand for it.
            alt = (attributes.get("alt") or "").strip()
            if alt:
                self.parts.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(self._skip_depth - 1, 0)
            return
        if self._skip_depth:
            return
        if tag in _BLOCK_TAGS:
            self.parts.append(_PARAGRAPH)
            if tag in ("ul", "ol") and self._lists:
                self._lists.pop()
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            self._close_link(href, start)

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)

    def close_open_links(self) -> None:
        """Give links left open by broken HTML their URL all the same."""
        while self._links:
            href, start = self._links.pop()
            self._close_link(href, start)

    def _close_link(self, href: str | None, start: int) -> None:
        target = (href or "").strip()
        if not target or target.startswith("#") or target.lower().startswith("javascript:"):
            return
        label = " ".join("".join(p for p in self.parts[start:] if not p.startswith("\x00")).split())
        shown = target[len("mailto:") :] if target.lower().startswith("mailto:") else target
        if not label:
            self.parts.append(shown)
        elif label not in (target, shown):
            self.parts.append(f" ({shown})")


def html_to_text(source: str) -> str:
    """Turn an HTML email into a readable plain-text version.

    Tags are dropped; paragraphs, headings, table rows and list items start
    new lines; ``<br>`` breaks a line; whitespace is collapsed; list items
    get ``-`` or a number; links keep their target as ``text (url)`` so the
    text version stays usable. Scripts, styles and the ``<head>`` are skipped.

    >>> html_to_text('<p>Hello <b>Ada</b>,</p><p><a href="https://x.test/l">Log in</a></p>')
    'Hello Ada,\\n\\nLog in (https://x.test/l)'
    """
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    parser.close_open_links()

    paragraphs: list[str] = []
    lines: list[str] = []
    current: list[str] = []

    def end_line() -> None:
        line = " ".join("".join(current).split())
        current.clear()
        if line:
            lines.append(line)

    def end_paragraph() -> None:
        end_line()
        if lines:
            paragraphs.append("\n".join(lines))
            lines.clear()

    for part in parser.parts:
        if part == _PARAGRAPH:
            end_paragraph()
        elif part == _NEWLINE:
            end_line()
        else:
            current.append(part)
    end_paragraph()
    return "\n\n".join(paragraphs)


# -- shipped defaults -----------------------------------------------------------


def load_default(name: str) -> EmailTemplate:
    """Return the shipped default template ``name`` (one of :data:`DEFAULT_TEMPLATES`).

    Raises :class:`~membership_core.errors.ValidationError` on the field
    ``name`` for any other name.
    """
    if not isinstance(name, str) or name not in DEFAULT_TEMPLATES:
        raise ValidationError(
            "name",
            f"unknown default template {name!r}; expected one of {', '.join(DEFAULT_TEMPLATES)}",
        )
    return _load_default(name)


#: Where each default email's own ``body.html`` goes in the shared ``_layout.html``.
_CONTENT_MARK = "<!-- the email's own content -->\n"


@functools.cache
def _load_default(name: str) -> EmailTemplate:
    emails = resources.files(_PACKAGE) / "templates" / "email"
    folder = emails / name
    text_file = folder / "body.txt"
    # One layout (header with logo, greeting, footer) for every default email,
    # joined here rather than with Jinja's extends, which admin templates may not use.
    layout = (emails / "_layout.html").read_text(encoding="utf-8")
    body = (folder / "body.html").read_text(encoding="utf-8")
    return EmailTemplate(
        subject=(folder / "subject.txt").read_text(encoding="utf-8").strip(),
        html=layout.replace(_CONTENT_MARK, body),
        text=text_file.read_text(encoding="utf-8") if text_file.is_file() else None,
    )
