"""Token claims are bounded: a caller must be named, and a token cannot live for years."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from shared.auth import ALL_NODES, TokenVerifier, issue_token
from shared.problems import Problem
from shared.settings import ServiceSettings

SETTINGS = ServiceSettings(jwt_secret="unit-test-secret-0123456789abcdef0123456789")


def token(**claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "grid-worker-7", "roles": ["admin"], "scope": [ALL_NODES], "iat": now,
            "exp": now + 600, "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience}  # fmt: skip
    body.update(claims)
    return jwt.encode(body, SETTINGS.jwt_secret, algorithm="HS256")


def test_a_well_formed_token_is_accepted() -> None:
    assert TokenVerifier(SETTINGS).verify(token()).sub == "grid-worker-7"
    day = issue_token(SETTINGS, sub="a", roles=["admin"], scope=[ALL_NODES], ttl_seconds=86400)
    assert TokenVerifier(SETTINGS).verify(day).sub == "a"


@pytest.mark.parametrize("sub", ["", "   ", "a\x00b", "x" * 201])
def test_a_token_that_does_not_name_its_caller_is_refused(sub: str) -> None:
    with pytest.raises(Problem) as refused:
        TokenVerifier(SETTINGS).verify(token(sub=sub))
    assert refused.value.status == 401


def test_a_token_living_longer_than_the_maximum_is_refused() -> None:
    year_9999 = 253402300799
    with pytest.raises(Problem) as refused:
        TokenVerifier(SETTINGS).verify(token(exp=year_9999))
    assert refused.value.status == 401 and "longer than 86400" in refused.value.detail
