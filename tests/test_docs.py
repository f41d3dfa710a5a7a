"""The documentation cannot rot: its examples run, every hook is documented, doctests pass.

- Every ```python block of each ``docs/*.md`` page runs, in order, in one namespace
  per page, inside a temporary working directory. Blocks fenced as ```python-skip,
  ```text, ```toml, ... are not run.
- Every hook in :mod:`membership_core.plugins.hookspecs` is mentioned in
  ``docs/plugins.md`` and has a docstring (the plugin author's reference).
- Every library module with ``>>>`` examples passes ``doctest``.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import importlib.util
import inspect
import io
import pkgutil
import re
from pathlib import Path

import pytest

import membership_core
from membership_core.plugins import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))

EXPECTED_PAGES = {
    "index.md",
    "quickstart.md",
    "catalog.md",
    "offers-and-checkout.md",
    "access-and-progress.md",
    "certificates.md",
    "email.md",
    "automations.md",
    "settings.md",
    "domains.md",
    "storage.md",
    "media.md",
    "plugins.md",
    "testing.md",
    "errors.md",
    "serialization.md",
}

# A fence starts at the beginning of a line; its info string decides whether it runs.
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The page's runnable blocks: (0-based line of the block's first code line, code)."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match["info"].strip() == "python":
            blocks.append((text.count("\n", 0, match.start("body")), match["body"]))
    return blocks


def hook_names() -> list[str]:
    """Every hookspec: the functions of ``hookspecs`` named ``membership_*``."""
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("membership_") and inspect.isfunction(value)
    )


def modules_with_examples() -> list[str]:
    """The library modules whose source contains ``>>>`` examples."""
    names = [membership_core.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(membership_core.__path__, membership_core.__name__ + ".")
    ]
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(".py") and ">>>" in Path(origin).read_text("utf-8"):
            found.append(name)
    return sorted(found)


# -- the pages ----------------------------------------------------------------


def test_every_page_exists_and_is_linked_from_the_index() -> None:
    assert {page.name for page in PAGES} >= EXPECTED_PAGES
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    missing = [
        page.name for page in PAGES if page.name != "index.md" and f"({page.name})" not in index
    ]
    assert not missing, f"pages not linked from docs/index.md: {missing}"


def _compile_example(source: str, line: int, page: Path) -> object:
    """Compile a block; each top-level ``try/except`` must really see its exception.

    Docs show errors as ``try: call() / except SomeError as error: assert ...``;
    without an ``else: raise AssertionError`` an example whose call stopped
    raising would still pass. (A ``try`` inside a function is left alone: there,
    not raising can be the point.)
    """
    # Padding keeps line numbers in tracebacks equal to the page's own lines.
    tree = ast.parse("\n" * line + source, str(page))
    for node in tree.body:
        if isinstance(node, ast.Try) and node.handlers and not node.orelse:
            message = f"the example at {page.name}:{node.lineno} expected an exception"
            node.orelse = [ast.parse(f"raise AssertionError({message!r})").body[0]]
    return compile(ast.fix_missing_locations(tree), str(page), "exec")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no ```python example"
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for line, source in blocks:
        exec(_compile_example(source, line, page), namespace)  # type: ignore[arg-type]


# -- the hooks ----------------------------------------------------------------


def test_every_event_is_exported_and_listed_in_plugins_md() -> None:
    import inspect

    import membership_core
    from membership_core.domain import events

    every = {
        name
        for name, value in vars(events).items()
        if inspect.isclass(value)
        and issubclass(value, events.DomainEvent)
        and value is not events.DomainEvent
        and not name.startswith("_")
    }
    assert every - set(membership_core.__all__) == set()
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    listed = text.split("The events of this release", 1)[1].split("```", 1)[0]
    assert {name for name in every if f"`{name}`" not in listed} == set()


def test_hookspecs_are_found() -> None:
    assert hook_names(), "no membership_* hookspecs found in plugins/hookspecs.py"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_documented(hook: str) -> None:
    plugins_page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    assert re.search(rf"\b{hook}\b", plugins_page), f"{hook} is not mentioned in docs/plugins.md"
    docstring = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert docstring.strip(), f"{hook} has no docstring in hookspecs.py"


# -- the docstring examples ----------------------------------------------------


def test_modules_with_examples_are_found() -> None:
    assert modules_with_examples(), "no module of membership_core has >>> examples"


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        failed, attempted = doctest.testmod(module, optionflags=DOCTEST_FLAGS, report=True)
    assert attempted > 0, f"{module_name} has '>>>' in its source but no example doctest runs"
    assert failed == 0, f"{failed} of {attempted} examples failed:\n{report.getvalue()}"


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    readme = DOCS.parent / "README.md"
    blocks = python_blocks(readme)
    assert blocks, "README.md has no ```python example"
    namespace: dict[str, object] = {"__name__": "docs.readme"}
    for line, source in blocks:
        exec(_compile_example(source, line, readme), namespace)  # type: ignore[arg-type]
    namespace["portal"].close()  # type: ignore[attr-defined]
    assert (tmp_path / "academy.db").is_file()
