"""The demo runs end to end, twice in the same folder, and reports what it made."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from membership_core.cli import main, run_demo


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
    # a second run in the same place starts afresh instead of failing
    assert run_demo(tmp_path / "demo", io.StringIO()) == 0


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
    }
    assert main(["tick", "mysql://nowhere"]) == 1
    assert "mysql" in capsys.readouterr().err
