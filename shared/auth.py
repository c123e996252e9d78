"""Bearer-JWT authentication and role/jurisdiction checks, deny by default (DESIGN.md §6).

A token carries `sub`, `roles`, `scope` (node ids whose subtrees the caller may see; `*` is
the whole system) and optionally `party_id`. Services check the role per route with the role
table (`shared/roles.py`), and the jurisdiction of the node a request concerns with
`check_scope` (`check_root_scope` for what belongs to no node).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from shared.problems import Problem
from shared.settings import ServiceSettings

ALL_NODES = "*"
CLOCK_SKEW_SECONDS = 60  # between the token issuer's clock and ours


class Role(StrEnum):
    ADMIN = "admin"
    REGISTRAR = "registrar"
    GRID_WORKER = "grid_worker"
    MEDIC = "medic"
    GATEKEEPER = "gatekeeper"
    COMMAND = "command"
    AUDITOR = "auditor"
    INTEGRATOR = "integrator"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str
    roles: frozenset[Role]
    scope: tuple[str, ...] = Field(default=())
    party_id: str | None = None

    @property
    def everywhere(self) -> bool:
        return ALL_NODES in self.scope

    def has_any(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)


class TokenVerifier:
    """RS256/ES256 against the identity provider's JWKS in production; HS256 with shared keys
    in development.

    Either way a token names its key in the `kid` header, so keys rotate without a flag day:
    a new key is published (in the JWKS, or in `GRID_JWT_VERIFY_KEYS`) before anything signs
    with it, and the old one is withdrawn once its last tokens have expired. An unknown `kid`
    is a 401. An HS256 token without a `kid` is checked against the signing key alone.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.jwks = (
            jwt.PyJWKClient(settings.jwks_url, lifespan=settings.jwks_cache_seconds)
            if settings.jwks_url
            else None
        )
        self.keys = settings.jwt_keys

    def _hs256_key(self, token: str) -> str:
        key_id = jwt.get_unverified_header(token).get("kid")
        if key_id is None:
            return self.settings.jwt_secret
        if not isinstance(key_id, str) or key_id not in self.keys:
            raise jwt.InvalidKeyError(f"unknown key id {str(key_id)[:64]!r}")
        return self.keys[key_id]

    def verify(self, token: str) -> Principal:
        try:
            if self.jwks is not None:
                key: Any = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            else:
                key, algorithms = self._hs256_key(token), ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Problem(401, "token expired", slug="token-expired") from exc
        except jwt.PyJWTError as exc:
            raise Problem(401, f"invalid token: {exc}", slug="invalid-token") from exc
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 200 or not sub.isprintable():
            raise Problem(401, "invalid token: sub must name the caller", slug="invalid-token")
        lifetime = self.settings.jwt_max_lifetime_seconds
        if claims["exp"] - time.time() > lifetime + CLOCK_SKEW_SECONDS:
            raise Problem(
                401, f"invalid token: lives longer than {lifetime} s", slug="invalid-token"
            )
        roles = claims.get("roles", [])
        scope = claims.get("scope", [])
        if isinstance(scope, str):
            scope = scope.split()
        known = {r.value for r in Role}
        return Principal(
            sub=sub,
            roles=frozenset(Role(r) for r in roles if r in known),
            scope=tuple(str(s) for s in scope),
            party_id=claims.get("party_id"),
        )


def issue_token(
    settings: ServiceSettings,
    *,
    sub: str,
    roles: list[str],
    scope: list[str],
    party_id: str | None = None,
    ttl_seconds: int = 12 * 3600,
) -> str:
    """A development token, HS256 under the current key (`GRID_JWT_KEY_ID`): production
    tokens come from the identity provider and are verified against its JWKS."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": roles,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    if party_id:
        claims["party_id"] = party_id
    return jwt.encode(
        claims, settings.jwt_secret, algorithm="HS256", headers={"kid": settings.jwt_key_id}
    )


async def current_principal(request: Request) -> Principal:
    """Async, so FastAPI runs it on the event loop: verifying an HS256 token takes tens of
    microseconds, less than a hop to the thread pool and back. Fetching a JWKS key set may
    block on the network, so that path still goes to a thread."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "missing bearer token", slug="unauthorized")
    verifier: TokenVerifier = request.app.state.verifier
    if verifier.jwks is not None:
        return await run_in_threadpool(verifier.verify, token.strip())
    return verifier.verify(token.strip())


def check_root_scope(principal: Principal, what: str) -> None:
    """403 unless the token is scoped to the whole system (`*`): for what belongs to no node
    (a root place, a global template, a party without a node) or answers for every node."""
    if not principal.everywhere:
        raise Problem(
            403, f"{what}: needs a token scoped to the whole system (*)", slug="out-of-scope"
        )


async def check_scope(
    principal: Principal, node_id: str, covers: Callable[[str, tuple[str, ...]], Awaitable[bool]]
) -> None:
    """403 unless `node_id` lies in a subtree of the caller's scope.

    `covers(node_id, scope)` is the service's lookup in its own copy of the place tree.
    """
    if principal.everywhere:
        return
    if not principal.scope or not await covers(node_id, principal.scope):
        raise Problem(
            403, f"node {node_id} is outside the caller's jurisdiction", slug="out-of-scope"
        )


def ltree_covers(table: str) -> Callable[[Any], Callable[[str, tuple[str, ...]], Awaitable[bool]]]:
    """`covers` over a table with `id` and `path ltree` columns."""

    def bind(conn: Any) -> Callable[[str, tuple[str, ...]], Awaitable[bool]]:
        async def covers(node_id: str, scope: tuple[str, ...]) -> bool:
            return bool(
                await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {table} n JOIN {table} s ON n.path <@ s.path"
                    " WHERE n.id = $1 AND s.id = ANY($2::text[]))",
                    node_id,
                    list(scope),
                )
            )

        return covers

    return bind
