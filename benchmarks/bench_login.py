"""login_timing: a failed login with the production argon2id parameters, known vs unknown email.

Ours is ``portal.accounts.login(email, wrong_password)`` for an email that has an
account, on a test portal over an SQLite file with ``Argon2Hasher()`` (the
default: argon2id, m=64 MiB, t=3, p=4). The baseline is the same call for an
email that has no account: the two must take the same time (``ratio`` near 1),
or the answer's timing would tell which emails have accounts. ``value`` shows the
check is deliberately slow (the target range is about 50 to 500 ms).
``details`` adds a successful login and the two paths of a reset request.
The frozen clock jumps two hours before each call, so the attempt throttle
never steps in.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from _registry import Result, benchmark
from _timing import interleaved, summary
from membership_core import InvalidToken
from membership_core.adapters.passwords_argon2 import Argon2Hasher
from membership_core.testing import TestPortal, make_test_portal

NAME = "login_timing"
#: Known and unknown emails within 10 % of each other.
TARGET_RATIO = 1.1
#: Reset requests per timed sample.
RESET_BATCH = 20
PASSWORD = "correct horse battery"


def _failing(portal: TestPortal, email: str) -> Callable[[], None]:
    def call() -> None:
        portal.clock.advance(hours=2)  # out of the throttle's window: not timed work
        try:
            portal.accounts.login(email, "wrong password, surely")
        except InvalidToken:
            return
        raise RuntimeError(f"{NAME}: a wrong password signed in")

    return call


@benchmark(NAME)
def login_timing(quick: bool) -> Result:
    """Failed login for a known email vs an unknown one, production argon2id."""
    repetitions = 3 if quick else 15
    with tempfile.TemporaryDirectory() as folder:
        portal = make_test_portal(
            f"sqlite:///{Path(folder) / 'portal.db'}", passwords=Argon2Hasher()
        )
        try:
            member = portal.members.invite("ada@example.com")
            portal.accounts.set_password(member.id, PASSWORD, PASSWORD)
            for number in range(50):  # other members, so the lookup is not trivial
                portal.members.invite(f"m{number}@example.com")

            def success() -> None:
                portal.clock.advance(hours=2)
                portal.accounts.login("ada@example.com", PASSWORD)

            def resets(email: str) -> Callable[[], None]:
                def call() -> None:
                    # A request takes about a millisecond: time a batch, per request.
                    for _ in range(RESET_BATCH):
                        portal.clock.advance(hours=2)  # never over the per-account limit
                        portal.accounts.request_password_reset(email)

                return call

            reset_known, reset_unknown = resets("ada@example.com"), resets("ghost@example.com")

            known, unknown = _failing(portal, "ada@example.com"), _failing(portal, "x@example.com")
            for warm_up in (known, unknown, success, reset_known, reset_unknown):
                warm_up()
            samples = interleaved(
                {
                    "failed_login": (known, unknown),
                    "successful_login": (success, unknown),
                    "reset_request": (reset_known, reset_unknown),
                },
                repetitions,
            )
        finally:
            portal.close()
    known_s, unknown_s = samples["failed_login"]
    reset_known_s, reset_unknown_s = samples["reset_request"]
    success_s = samples["successful_login"][0]
    ms = 1000.0
    return Result(
        name=NAME,
        value=round(statistics.median(known_s) * ms, 3),
        unit="ms/login",
        baseline=round(statistics.median(unknown_s) * ms, 3),
        target=TARGET_RATIO,
        details={
            "quick": quick,
            "repetitions": repetitions,
            "hasher": "argon2id m=65536 KiB, t=3, p=4 (Argon2Hasher() defaults)",
            "deliberately_slow_range_ms": [50, 500],
            "known_email_wrong_password_ms": summary(known_s, ms),
            "unknown_email_ms": summary(unknown_s, ms),
            "successful_login_ms": summary(success_s, ms),
            "reset_request_known_ms": summary(reset_known_s, ms / RESET_BATCH),
            "reset_request_unknown_ms": summary(reset_unknown_s, ms / RESET_BATCH),
            "reset_request_ratio": round(
                statistics.median(reset_known_s) / statistics.median(reset_unknown_s), 3
            ),
        },
    )
