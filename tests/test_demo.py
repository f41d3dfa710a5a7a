"""The demo runs end to end, twice in the same folder, reports what it made, and never
removes a file it did not write."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from membership_core.cli import DEMO_MARKER, main, run_demo


def test_demo_walks_a_member_to_a_certificate(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path / "demo", out) == 0
    report = out.getvalue()
    assert "100% complete" in report
    assert "[x] A command-line quiz" in report
    assert "verification: valid" in report
    eml = re.findall(r"(\S+\.eml)", report)
    assert len(eml) == 1
    assert Path(eml[0]).is_file()
    certificate = Path(re.findall(r"file: (\S+\.html)", report)[0])
    html = certificate.read_text("utf-8")
    assert "Ada Lovelace" in html
    assert "Python Foundations" in html
    assert "<svg" in html  # the QR code of the verification link
    (code,) = re.findall(r"verification: valid \(code (\S+)\)", report)
    assert f"verify?code={code}" in html
    pdf = Path(re.findall(r"file: (\S+\.pdf)", report)[0])
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert pdf.with_suffix(".html") == certificate
    # a second run in the same place starts afresh instead of failing
    assert run_demo(tmp_path / "demo", io.StringIO()) == 0


def test_a_second_run_replaces_only_the_demos_own_files(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    assert run_demo(folder, io.StringIO()) == 0
    assert (folder / DEMO_MARKER).is_file()
    notes = folder / "my-notes.txt"
    notes.write_text("keep me", "utf-8")
    (folder / "outbox" / "mine.txt").write_text("mine", "utf-8")
    stale = folder / "certificate-OLD-0000.html"
    stale.write_text("from an earlier run", "utf-8")
    stale_pdf = folder / "certificate-OLD-0000.pdf"
    stale_pdf.write_bytes(b"%PDF- from an earlier run")
    out = io.StringIO()
    assert run_demo(folder, out) == 0
    assert notes.read_text("utf-8") == "keep me"
    assert (folder / "outbox" / "mine.txt").read_text("utf-8") == "mine"
    assert not stale.exists()  # the demo's own kind of file, in the demo's folder
    assert not stale_pdf.exists()
    # a fresh database each time: one email, one certificate
    assert len(list((folder / "outbox").glob("*.eml"))) == 1
    assert len(list(folder.glob("certificate-*.html"))) == 1
    assert len(list(folder.glob("certificate-*.pdf"))) == 1
    assert "verification: valid" in out.getvalue()


def test_a_folder_the_demo_did_not_make_is_left_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    precious = home / "photos" / "cat.jpg"
    precious.write_bytes(b"\xff\xd8 a cat")
    own_db = home / "demo.db"  # even a file with a demo name is not the demo's here
    own_db.write_text("someone else's", "utf-8")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    err = io.StringIO()
    assert run_demo(home, io.StringIO(), err) == 2
    assert "not empty" in err.getvalue()
    assert DEMO_MARKER in err.getvalue()
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before
    assert precious.read_bytes() == b"\xff\xd8 a cat"
    assert own_db.read_text("utf-8") == "someone else's"
    # the command line says so on stderr, with exit code 2
    assert main(["demo", "--dir", str(home)]) == 2
    captured = capsys.readouterr()
    assert "nothing was touched" in captured.err
    assert captured.out == ""
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    target.write_text("a file", "utf-8")
    err = io.StringIO()
    assert run_demo(target, io.StringIO(), err) == 2
    assert "not a folder" in err.getvalue()
    assert target.read_text("utf-8") == "a file"


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    assert run_demo(folder, io.StringIO()) == 0
    assert (folder / DEMO_MARKER).is_file()
    assert (folder / "demo.db").is_file()


def test_a_symlinked_outbox_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    assert run_demo(folder, io.StringIO()) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.eml").write_text("not the demo's", "utf-8")
    for path in (folder / "outbox").iterdir():
        path.unlink()
    (folder / "outbox").rmdir()
    (folder / "outbox").symlink_to(elsewhere, target_is_directory=True)
    assert run_demo(folder, io.StringIO()) == 0
    assert (elsewhere / "keep.eml").read_text("utf-8") == "not the demo's"


def test_membership_command_runs_the_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "membership_core.cli", "demo", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Certificate:" in result.stdout
    assert main(["demo", "--dir", str(tmp_path / "again")]) == 0


def test_init_and_tick_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/portal.db"
    assert main(["init", url, "--tenant", "acme"]) == 0
    assert "acme" in capsys.readouterr().out
    assert main(["tick", url, "--tenant", "acme", "--mailer", "memory://"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "events_dispatched": 0,
        "mail_sent": 0,
        "mail_failed": 0,
        "charges_succeeded": 0,
        "charges_failed": 0,
        "charges_pending": 0,
        "webhooks_applied": 0,
        "access_repaired": 0,
        "lessons_unlocked": 0,
        "access_notices": 0,
        "account_emails": 0,
    }
    assert main(["tick", "mysql://nowhere"]) == 1
    assert "mysql" in capsys.readouterr().err
