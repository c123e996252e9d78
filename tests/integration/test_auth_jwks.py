"""Production token verification against an identity provider's JWKS (served locally)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.auth import Role, TokenVerifier, issue_token
from shared.problems import Problem
from shared.settings import ServiceSettings

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def idp_token(**claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "u-1",
        "roles": ["command"],
        "scope": ["n-1"],
        "iat": now,
        "exp": now + 60,
        "iss": "grid-epi",
        "aud": "grid-epi",
    }
    return jwt.encode({**base, **claims}, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_a_token_signed_by_the_identity_provider_is_accepted(jwks_url: str) -> None:
    verifier = TokenVerifier(ServiceSettings(jwks_url=jwks_url))
    principal = verifier.verify(idp_token(party_id="p-9"))
    assert principal.roles == frozenset({Role.COMMAND})
    assert principal.scope == ("n-1",) and principal.party_id == "p-9"


def test_the_shared_development_secret_is_refused_when_a_jwks_is_configured(
    jwks_url: str,
) -> None:
    settings = ServiceSettings(jwks_url=jwks_url)
    dev = issue_token(settings, sub="x", roles=["admin"], scope=["*"])
    with pytest.raises(Problem) as info:
        TokenVerifier(settings).verify(dev)
    assert info.value.status == 401


def test_wrong_audience_is_refused(jwks_url: str) -> None:
    with pytest.raises(Problem):
        TokenVerifier(ServiceSettings(jwks_url=jwks_url)).verify(idp_token(aud="other"))
