"""The production path rotates its keys through the identity provider's JWKS: a new key is
published before anything signs with it, the old one is withdrawn after its tokens expired,
and a key the JWKS does not hold is refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import TokenVerifier
from shared.problems import Problem
from shared.settings import ServiceSettings

CACHE_SECONDS = 0.3
OLD = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NEW = ec.generate_private_key(ec.SECP256R1())
PUBLIC = {
    "k1": {**json.loads(RSAAlgorithm.to_jwk(OLD.public_key())), "alg": "RS256"},
    "k2": {**json.loads(ECAlgorithm.to_jwk(NEW.public_key())), "alg": "ES256"},
}


class Jwks:
    """An identity provider's key set that the test changes between requests."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def body(self) -> bytes:
        keys = [{**PUBLIC[kid], "kid": kid, "use": "sig"} for kid in self.published]
        return json.dumps({"keys": keys}).encode()


@pytest.fixture
def jwks() -> Iterator[tuple[Jwks, str]]:
    served = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = served.body()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def token(kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "u-1", "roles": ["command"], "scope": ["n-1"], "iat": now, "exp": now + 60,
              "iss": "grid-epi", "aud": "grid-epi"}  # fmt: skip
    key, algorithm = (OLD, "RS256") if kid == "k1" else (NEW, "ES256")
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def accepted(verifier: TokenVerifier, kid: str) -> bool:
    try:
        verifier.verify(token(kid))
    except Problem as refused:
        assert refused.status == 401
        return False
    return True


def test_keys_rotate_through_the_jwks_without_refusing_a_token_in_flight(
    jwks: tuple[Jwks, str],
) -> None:
    served, url = jwks
    verifier = TokenVerifier(ServiceSettings(jwks_url=url, jwks_cache_seconds=CACHE_SECONDS))
    served.published = ["k1"]
    assert accepted(verifier, "k1")
    assert not accepted(verifier, "k2")  # not published: nothing may sign with it yet

    served.published = ["k1", "k2"]  # 1. the new key is published
    time.sleep(CACHE_SECONDS * 2)  # ... and the services' cached key sets expire
    assert accepted(verifier, "k1") and accepted(verifier, "k2")  # 2. the provider switches

    served.published = ["k2"]  # 3. the old key is withdrawn after its last token expired
    time.sleep(CACHE_SECONDS * 2)
    assert accepted(verifier, "k2")
    assert not accepted(verifier, "k1")


def test_a_token_without_a_kid_or_with_an_unknown_kid_is_refused(
    jwks: tuple[Jwks, str],
) -> None:
    served, url = jwks
    served.published = ["k1"]
    verifier = TokenVerifier(ServiceSettings(jwks_url=url, jwks_cache_seconds=CACHE_SECONDS))
    now = int(time.time())
    claims = {"sub": "u", "exp": now + 60, "iss": "grid-epi", "aud": "grid-epi"}
    for forged in (
        jwt.encode(claims, OLD, algorithm="RS256"),
        jwt.encode(claims, OLD, algorithm="RS256", headers={"kid": "k7"}),
    ):
        with pytest.raises(Problem) as refused:
            verifier.verify(forged)
        assert refused.value.status == 401
