"""HS256 keys rotate without a flag day: every token names its key (`kid`), the current key
signs, every key in the ring verifies, and a key nobody published is refused."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import ALL_NODES, TokenVerifier, issue_token
from shared.problems import Problem
from shared.settings import ServiceSettings

OLD = "old-key-" + "1" * 40
NEW = "new-key-" + "2" * 40


def ring(signing: str, secret: str, **verify_only: str) -> ServiceSettings:
    return ServiceSettings(
        jwt_key_id=signing,
        jwt_secret=secret,
        jwt_verify_keys=",".join(f"{kid}:{key}" for kid, key in verify_only.items()),
    )


def signed_by(settings: ServiceSettings) -> str:
    return issue_token(settings, sub="medic-3", roles=["medic"], scope=[ALL_NODES])


def accepted(settings: ServiceSettings, token: str) -> bool:
    try:
        TokenVerifier(settings).verify(token)
    except Problem as refused:
        assert refused.status == 401
        return False
    return True


def test_a_token_names_the_key_that_signed_it() -> None:
    assert jwt.get_unverified_header(signed_by(ring("k1", OLD)))["kid"] == "k1"


def test_a_key_is_rotated_in_three_steps_and_no_token_in_flight_is_refused() -> None:
    before = ring("k1", OLD)
    old_token = signed_by(before)
    # 1. every service learns the new key while the old one still signs
    learning = ring("k1", OLD, k2=NEW)
    # 2. the issuer signs with the new key; the old one only verifies until its tokens expire
    switched = ring("k2", NEW, k1=OLD)
    new_token = signed_by(switched)
    # 3. the old key is withdrawn
    after = ring("k2", NEW)

    assert accepted(learning, old_token) and accepted(learning, new_token)
    assert accepted(switched, old_token) and accepted(switched, new_token)
    assert accepted(after, new_token)
    assert not accepted(after, old_token)
    assert not accepted(before, new_token)


def test_an_unknown_key_id_is_refused_even_with_a_valid_signature() -> None:
    settings = ring("k1", OLD)
    now = int(time.time())
    claims = {"sub": "x", "roles": ["admin"], "scope": [ALL_NODES], "exp": now + 60,
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience}  # fmt: skip
    forged = jwt.encode(claims, OLD, algorithm="HS256", headers={"kid": "k9"})
    with pytest.raises(Problem, match="unknown key id 'k9'") as refused:
        TokenVerifier(settings).verify(forged)
    assert refused.value.status == 401


def test_a_token_under_a_verify_only_key_with_the_wrong_kid_is_refused() -> None:
    settings = ring("k2", NEW, k1=OLD)
    now = int(time.time())
    claims = {"sub": "x", "exp": now + 60, "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience}  # fmt: skip
    mislabelled = jwt.encode(claims, OLD, algorithm="HS256", headers={"kid": "k2"})
    assert not accepted(settings, mislabelled)


def test_a_token_without_a_kid_is_checked_against_the_signing_key_only() -> None:
    settings = ring("k2", NEW, k1=OLD)
    now = int(time.time())
    claims = {"sub": "x", "exp": now + 60, "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience}  # fmt: skip
    assert accepted(settings, jwt.encode(claims, NEW, algorithm="HS256"))
    assert not accepted(settings, jwt.encode(claims, OLD, algorithm="HS256"))
