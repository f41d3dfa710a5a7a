"""The webhook signer and verifier: Stripe-style ``t=<unix>,v1=<hex>`` HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core.adapters.webhooks import (
    DEFAULT_SIGNATURE_HEADER,
    DEFAULT_TOLERANCE,
    WebhookVerifier,
    sign,
)
from membership_core.errors import InvalidToken, ValidationError

SECRET = "whsec_one"
BODY = b'{"events": []}'
T = 1767603600
NOW = datetime.fromtimestamp(T, UTC)


def headers_for(
    body: bytes = BODY, secret: str | list[str] = SECRET, at: int = T
) -> dict[str, str]:
    return {DEFAULT_SIGNATURE_HEADER: sign(body, secret, at)}


def digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_round_trip() -> None:
    assert WebhookVerifier(SECRET).verify(BODY, headers_for(), now=NOW) == T


def test_signature_is_the_documented_hmac() -> None:
    assert sign(BODY, SECRET, T) == f"t={T},v1={digest(SECRET, T, BODY)}"


def test_sign_accepts_an_aware_datetime_and_refuses_bad_timestamps() -> None:
    assert sign(BODY, SECRET, NOW + timedelta(microseconds=999)) == sign(BODY, SECRET, T)
    for bad in (-1, True, 1.5, "1767603600", datetime(2026, 1, 1)):
        with pytest.raises(ValidationError) as error:
            sign(BODY, SECRET, bad)  # type: ignore[arg-type]
        assert error.value.field == "timestamp"


def test_defaults() -> None:
    verifier = WebhookVerifier(SECRET)
    assert verifier.header == DEFAULT_SIGNATURE_HEADER == "Membership-Signature"
    assert verifier.tolerance == DEFAULT_TOLERANCE == timedelta(seconds=300)


# -- rotation ----------------------------------------------------------------------


def test_rotation_accepts_either_secret() -> None:
    verifier = WebhookVerifier(["whsec_new", "whsec_old"])
    assert verifier.verify(BODY, headers_for(secret="whsec_old"), now=NOW) == T
    assert verifier.verify(BODY, headers_for(secret="whsec_new"), now=NOW) == T
    with pytest.raises(InvalidToken, match="does not match"):
        verifier.verify(BODY, headers_for(secret="whsec_other"), now=NOW)


def test_sender_signing_with_two_secrets_satisfies_either_receiver() -> None:
    headers = headers_for(secret=["whsec_new", "whsec_old"])
    assert headers[DEFAULT_SIGNATURE_HEADER].count("v1=") == 2
    for secret in ("whsec_new", "whsec_old"):
        assert WebhookVerifier(secret).verify(BODY, headers, now=NOW) == T


def test_secrets_may_be_bytes() -> None:
    headers = headers_for()
    assert WebhookVerifier(SECRET.encode()).verify(BODY, headers, now=NOW) == T


# -- headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["membership-signature", "MEMBERSHIP-SIGNATURE", "Membership-Signature"]
)
def test_header_name_is_case_insensitive(name: str) -> None:
    value = sign(BODY, SECRET, T)
    assert WebhookVerifier(SECRET).verify(BODY, {name: value}, now=NOW) == T


def test_custom_header_name() -> None:
    verifier = WebhookVerifier(SECRET, header="X-Provider-Signature")
    assert verifier.verify(BODY, {"x-provider-signature": sign(BODY, SECRET, T)}, now=NOW) == T
    with pytest.raises(InvalidToken, match="missing"):
        verifier.verify(BODY, headers_for(), now=NOW)


def test_duplicated_header_is_refused() -> None:
    value = sign(BODY, SECRET, T)
    headers = {"Membership-Signature": value, "membership-signature": value}
    with pytest.raises(InvalidToken, match="more than once"):
        WebhookVerifier(SECRET).verify(BODY, headers, now=NOW)


def test_missing_header_is_refused() -> None:
    with pytest.raises(InvalidToken, match="missing"):
        WebhookVerifier(SECRET).verify(BODY, {"Content-Type": "application/json"}, now=NOW)


def test_headers_must_be_a_mapping() -> None:
    with pytest.raises(ValidationError) as error:
        WebhookVerifier(SECRET).verify(BODY, [("a", "b")], now=NOW)  # type: ignore[arg-type]
    assert error.value.field == "headers"


GOOD = digest(SECRET, T, BODY)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"v1={GOOD}", "exactly one"),
        (f"t={T},t={T},v1={GOOD}", "exactly one"),
        (f"t=,v1={GOOD}", "exactly one"),
        (f"t=-5,v1={GOOD}", "exactly one"),
        (f"t=12.5,v1={GOOD}", "exactly one"),
        (f"t={T}", "no v1"),
        (f"t={T},v0={GOOD}", "no v1"),
        (f"t={T},v1={'z' * 64}", "64 hex"),
        (f"t={T},v1={GOOD[:-1]}", "64 hex"),
        (f"t={T},v1={GOOD}0", "64 hex"),
        (f"t={T},v1={GOOD}," + "x=1," * 1200, "too long"),
        (f"t={T},v1={GOOD},garbage", "not key=value"),
        ("", "exactly one"),
    ],
)
def test_malformed_headers_are_refused(value: str, problem: str) -> None:
    with pytest.raises(InvalidToken, match=problem):
        WebhookVerifier(SECRET).verify(BODY, {DEFAULT_SIGNATURE_HEADER: value}, now=NOW)


def test_signature_header_must_be_text() -> None:
    with pytest.raises(InvalidToken, match="not text"):
        WebhookVerifier(SECRET).verify(
            BODY,
            {DEFAULT_SIGNATURE_HEADER: b"t=1,v1=00"},  # type: ignore[dict-item]
            now=NOW,
        )


def test_other_schemes_and_spacing_are_tolerated() -> None:
    value = f" t={T} , v0={'0' * 64}, v1={GOOD.upper()} ,"
    assert WebhookVerifier(SECRET).verify(BODY, {DEFAULT_SIGNATURE_HEADER: value}, now=NOW) == T


def test_bad_signature_is_reported_before_the_timestamp() -> None:
    stale = headers_for(secret="whsec_other", at=T - 10_000)
    with pytest.raises(InvalidToken, match="does not match"):
        WebhookVerifier(SECRET).verify(BODY, stale, now=NOW)


# -- tolerance -----------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_inside_the_tolerance_is_accepted(offset: int) -> None:
    now = NOW + timedelta(seconds=offset)
    assert WebhookVerifier(SECRET).verify(BODY, headers_for(), now=now) == T


@pytest.mark.parametrize(("offset", "problem"), [(301, "ago"), (-301, "future")])
def test_outside_the_tolerance_is_refused(offset: int, problem: str) -> None:
    now = NOW + timedelta(seconds=offset)
    with pytest.raises(InvalidToken, match=problem):
        WebhookVerifier(SECRET).verify(BODY, headers_for(), now=now)


def test_sub_second_past_the_boundary_is_refused() -> None:
    now = NOW + timedelta(seconds=300, microseconds=1)
    with pytest.raises(InvalidToken, match="tolerance"):
        WebhookVerifier(SECRET).verify(BODY, headers_for(), now=now)


def test_custom_tolerance() -> None:
    verifier = WebhookVerifier(SECRET, tolerance=timedelta(seconds=10))
    assert verifier.verify(BODY, headers_for(), now=NOW + timedelta(seconds=10)) == T
    with pytest.raises(InvalidToken):
        verifier.verify(BODY, headers_for(), now=NOW + timedelta(seconds=11))
    assert WebhookVerifier(SECRET, tolerance=60).tolerance == timedelta(seconds=60)


@pytest.mark.parametrize("tolerance", [0, -1, timedelta(0), timedelta(seconds=-5), True, 1.5])
def test_non_positive_or_odd_tolerance_is_refused(tolerance: object) -> None:
    with pytest.raises(ValidationError) as error:
        WebhookVerifier(SECRET, tolerance=tolerance)  # type: ignore[arg-type]
    assert error.value.field == "tolerance"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValidationError):
        WebhookVerifier(SECRET).verify(BODY, headers_for(), now=datetime(2026, 1, 5, 9))


# -- secrets and bodies ----------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", b"", [], ["ok", ""], 42, [42]])
def test_empty_or_odd_secrets_are_refused(secret: object) -> None:
    with pytest.raises(ValidationError) as error:
        WebhookVerifier(secret)  # type: ignore[arg-type]
    assert error.value.field == "secret"
    with pytest.raises(ValidationError):
        sign(BODY, secret, T)  # type: ignore[arg-type]


def test_empty_header_name_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        WebhookVerifier(SECRET, header=" ")
    assert error.value.field == "header"


@pytest.mark.parametrize("body", ['{"events": []}', None, 12, memoryview(BODY)])
def test_body_must_be_bytes(body: object) -> None:
    with pytest.raises(ValidationError) as error:
        WebhookVerifier(SECRET).verify(body, headers_for(), now=NOW)  # type: ignore[arg-type]
    assert error.value.field == "body"
    with pytest.raises(ValidationError):
        sign(body, SECRET, T)  # type: ignore[arg-type]


def test_bytearray_body_is_accepted() -> None:
    assert WebhookVerifier(SECRET).verify(bytearray(BODY), headers_for(), now=NOW) == T  # type: ignore[arg-type]


# -- properties --------------------------------------------------------------------------


@given(body=st.binary(max_size=512), timestamp=st.integers(min_value=0, max_value=10**11))
def test_any_body_and_timestamp_round_trip(body: bytes, timestamp: int) -> None:
    now = datetime.fromtimestamp(timestamp, UTC)
    assert WebhookVerifier(SECRET).verify(body, headers_for(body, at=timestamp), now=now) == (
        timestamp
    )


@given(
    body=st.binary(min_size=1, max_size=512),
    data=st.data(),
)
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="position")
    delta = data.draw(st.integers(min_value=1, max_value=255), label="delta")
    changed = bytearray(body)
    changed[position] = (changed[position] + delta) % 256
    with pytest.raises(InvalidToken, match="does not match"):
        WebhookVerifier(SECRET).verify(bytes(changed), headers_for(body), now=NOW)
