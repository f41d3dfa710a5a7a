"""The ``membership`` command: ``demo``, ``init`` and ``tick``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .adapters.mail_outbox import OutboxFolderMailer
from .domain.outline import LessonState, Outline, OutlineCategory
from .errors import ConfigurationError, MembershipError
from .portal import Portal
from .serialization import unstructure

__all__ = ["main", "run_demo"]

_MARKS = {
    LessonState.COMPLETED: "[x]",
    LessonState.AVAILABLE: "[ ]",
    LessonState.LOCKED: "[~]",
    LessonState.NO_ACCESS: "[-]",
}


def _print_outline(outline: Outline, out: TextIO) -> None:
    def walk(categories: Sequence[OutlineCategory], depth: int) -> None:
        for category in categories:
            print(f"{'  ' * depth}  {category.title}", file=out)
            for lesson in category.lessons:
                print(f"{'  ' * depth}    {_MARKS[lesson.state]} {lesson.title}", file=out)
            walk(category.children, depth + 1)

    print(f"  {outline.title}: {outline.progress.percent}% complete", file=out)
    walk(outline.categories, 0)


#: Written into the demo's folder on its first run: only a folder carrying it
#: is ever cleared by a later run.
DEMO_MARKER = ".membership-demo"
_MARKER_TEXT = (
    "This folder was made by `membership demo`. Running the demo again here\n"
    "replaces the files it wrote (demo.db*, outbox/*.eml, certificate-*.html and .pdf);\n"
    "it never touches anything else.\n"
)


class DemoFolderError(Exception):
    """The demo's folder holds files the demo did not write; nothing was touched."""


def _demo_files(directory: Path) -> list[Path]:
    """Every file a previous demo run may have written in ``directory``, that exists."""
    outbox = directory / "outbox"
    found = [directory / f"demo.db{suffix}" for suffix in ("", "-wal", "-shm", "-journal")]
    found += sorted(directory.glob("certificate-*.html")) + sorted(
        directory.glob("certificate-*.pdf")
    )
    if outbox.is_dir() and not outbox.is_symlink():  # never reach out of the folder
        # The .eml files and the mailer's own temporary files (".name.*.tmp").
        found += sorted(outbox.glob("*.eml")) + sorted(outbox.glob(".*.tmp"))
    # A symlink is removed as a link (its target is left alone); a folder of
    # one of these names is not the demo's, so it stays.
    return [path for path in found if path.is_symlink() or path.is_file()]


def _prepare_demo_folder(directory: Path) -> None:
    """Make ``directory`` ready for a fresh run, removing only what the demo wrote.

    A folder that does not exist or is empty is used (and marked); a folder
    with the marker of an earlier run has that run's files removed; any other
    non-empty folder is refused, so ``--dir ~`` cannot wipe a home folder.
    """
    if directory.exists() and not directory.is_dir():
        raise DemoFolderError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / DEMO_MARKER).is_file():
            raise DemoFolderError(
                f"{directory} is not empty and was not made by the demo (no {DEMO_MARKER} "
                "file); nothing was touched. Choose a new or empty folder with --dir."
            )
        for path in _demo_files(directory):
            path.unlink()
        outbox = directory / "outbox"
        if outbox.is_dir() and not outbox.is_symlink() and not any(outbox.iterdir()):
            outbox.rmdir()  # recreated by the mailer; kept if someone put files in it
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text(_MARKER_TEXT, "utf-8")


def run_demo(directory: Path, out: TextIO = sys.stdout, err: TextIO | None = None) -> int:
    """Build a small portal in ``directory``/demo.db and walk one member through it.

    Returns 0, or 2 (with the reason on ``err``, standard error by default)
    when ``directory`` holds files the demo did not write: the demo only ever
    removes its own files from an earlier run, marked by ``.membership-demo``.
    """
    directory = directory.expanduser().resolve()  # printed paths work from anywhere
    try:
        _prepare_demo_folder(directory)
    except (DemoFolderError, OSError) as error:
        print(f"membership demo: {error}", file=sys.stderr if err is None else err)
        return 2
    database = directory / "demo.db"
    mailer = OutboxFolderMailer(directory / "outbox")
    with Portal.open(
        f"sqlite:///{database}",
        tenant="demo",
        mailer=mailer,
        platform_url="https://academy.example.com",
    ) as portal:
        portal.settings.update_site(title="Acme Academy", currency="EUR")
        course = portal.catalog.create_product(
            "Python Foundations", description="From zero to your first program."
        )
        basics = portal.catalog.add_category(course.id, "Getting started")
        first = portal.catalog.add_lesson(course.id, basics.id, "Install Python", kind="video")
        second = portal.catalog.add_lesson(course.id, basics.id, "Variables and types")
        projects = portal.catalog.add_category(course.id, "Your first project")
        third = portal.catalog.add_lesson(course.id, projects.id, "A command-line quiz")
        portal.catalog.publish_product(course.id)
        offer = portal.offers.create_offer("Python Foundations (free)", [course.id])
        portal.offers.publish(offer.id)

        purchase = portal.checkout.purchase(
            offer.id,
            email="ada@example.com",
            first_name="Ada",
            last_name="Lovelace",
            idempotency_key="demo-claim-1",
        )
        member = portal.members.get(purchase.member_id)
        print(f"Portal database: {database}", file=out)
        print(f"Member {member.display_name} <{member.email}> claimed {offer.title!r}", file=out)

        print("\nOutline before starting:", file=out)
        _print_outline(portal.access.outline(member.id, course.id), out)

        for lesson in (first, second, third):
            portal.progress.complete_lesson(member.id, lesson.id)
        portal.tick()

        print("\nOutline after completing every lesson:", file=out)
        _print_outline(portal.access.outline(member.id, course.id), out)

        print("\nEmails written:", file=out)
        for message in portal.mail.outbox():
            path = mailer.path_for(message.message.message_id)
            print(f"  [{message.status.value}] {message.message.subject}", file=out)
            print(f"    {path}", file=out)

        (certificate,) = portal.certificates.for_member(member.id)
        code = portal.certificates.verification_code(certificate.id)
        verification = portal.certificates.verify(code)
        print("\nCertificate:", file=out)
        print(
            f"  serial {certificate.serial}: {certificate.recipient_name}, "
            f"{certificate.course_title}, completed {certificate.completed_at.date()}",
            file=out,
        )
        print(f"  verification: {verification.status.value} (code {code})", file=out)
        print(f"  link: {portal.certificates.verification_url(certificate.id)}", file=out)
        stem = directory / f"certificate-{certificate.serial}"
        try:
            html = portal.certificates.render_html(certificate.id)
        except ConfigurationError as error:  # the QR code needs membership_core[certificates]
            print(f"  no certificate file: {error}", file=out)
            return 0
        stem.with_suffix(".html").write_text(html, "utf-8")
        print(f"  file: {stem.with_suffix('.html')}", file=out)
        try:
            pdf = portal.certificates.render_pdf(certificate.id)
        except ConfigurationError as error:
            print(f"  no PDF: {error}", file=out)
        else:
            stem.with_suffix(".pdf").write_bytes(pdf)
            print(f"  file: {stem.with_suffix('.pdf')}", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``membership`` command."""
    parser = argparse.ArgumentParser(prog="membership", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk one member from a free offer to a certificate")
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path("membership-demo"),
        help="folder for the demo's database, emails and certificate: new, empty, or "
        "made by an earlier demo run (whose files are replaced; nothing else is touched)",
    )
    for name, help_text in (
        ("init", "create or migrate the database at URL and the portal TENANT"),
        ("tick", "run scheduled work once (events, due mail); print what it did as JSON"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("url", help="database URL, e.g. sqlite:///portal.db")
        command.add_argument("--tenant", default="default", help="portal name (default: default)")
        command.add_argument("--mailer", default=None, help="mailer URL, e.g. smtp://host:587")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.dir)
    try:
        with Portal.open(args.url, tenant=args.tenant, mailer=args.mailer) as portal:
            if args.command == "tick":
                print(json.dumps(unstructure(portal.tick())))
            else:
                print(f"portal {portal.tenant!r} ready at {args.url}")
    except MembershipError as error:
        print(f"membership {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
