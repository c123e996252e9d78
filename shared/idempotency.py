"""`Idempotency-Key` on every write route, as the IETF draft (httpapi-idempotency-key-header)
describes it.

* A key belongs to (caller, method, route template, key): the same key on another route, or
  from another caller, is another key. A command's id in the event store is made from the four,
  so a retry can only ever find the events its own first run appended.
* Each keyed request carries a fingerprint: an HMAC-SHA256 of its method, path, query and body,
  computed while the body streams in (`Fingerprints`). It is keyed because a plain hash of a
  body holding an ID number can be brute-forced from the table.
* The same key with another request is refused (422); a request with a key whose first
  request is still running is refused (409, retry later); a retry of a request that succeeded
  answers what the first one answered and writes nothing.
* A command (shared/commands.py `execute`) claims its key with a transaction-scoped advisory
  lock (it assigns no transaction id, so the append stays the transaction's first write) and
  records it after the append, in the same transaction: the key is stored exactly when the
  events are. Its answer on a retry is rebuilt from those events.
* A request answered by more than one transaction — a batch (whose items' own ids stay their
  idempotency), an upload, an operation — runs through `once`: the key is held by a
  session-level advisory lock while it runs and stored with its first answer (status, type,
  body) when it succeeds, so a retry gets that answer byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import DomainError, Refusal

MAX_KEY_LENGTH = 200
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCOPE_KEY = "grid.idempotency"
_HEADER = b"idempotency-key"
# what a stored answer keeps of its headers (the rest, such as X-Correlation-ID, is per request)
KEPT_HEADERS = frozenset({"content-type", "location", "etag"})
_FIELD = "header.Idempotency-Key"


@dataclass(frozen=True)
class RequestKey:
    """One keyed request: whose key, on which route, and the fingerprint of what was sent."""

    caller: str
    method: str
    route: str
    key: str
    fingerprint: bytes

    @property
    def command_id(self) -> str:
        return f"{self.caller} {self.method} {self.route} {self.key}"

    @property
    def lock_id(self) -> str:
        return "idempotency " + self.command_id

    def row(self) -> tuple[str, str, str, str]:
        return self.caller, self.method, self.route, self.key


def fingerprint_key(secret: str) -> bytes:
    """The fingerprint HMAC's key, derived from a service secret for this use only."""
    return hmac.new(secret.encode(), b"grid-epi idempotency fingerprint", hashlib.sha256).digest()


class Fingerprints:
    """ASGI middleware: for a write request with an `Idempotency-Key`, an HMAC of its method,
    path, query string and body, fed as the body streams in (nothing is buffered)."""

    def __init__(self, app: ASGIApp, key: bytes) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not any(name == _HEADER for name, _ in scope.get("headers", ()))
        ):
            await self.app(scope, receive, send)
            return
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"]):
            mac.update(len(part).to_bytes(8, "big") + part)
        scope[_SCOPE_KEY] = mac

        async def fed() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                mac.update(message.get("body", b""))
            return message

        await self.app(scope, fed, send)


def request_key(request: Request, caller: str) -> RequestKey | None:
    """The request's key, or None without one; 422 for a malformed key."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise DomainError(
            "validation-error",
            f"must be 1-{MAX_KEY_LENGTH} printable characters",
            field=_FIELD,
        )
    mac = request.scope.get(_SCOPE_KEY)
    if mac is None:  # a write route outside build_app's middleware, or not a write method
        raise RuntimeError("Idempotency-Key on a request the Fingerprints middleware did not see")
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return RequestKey(caller, request.method, route, key, mac.copy().digest())


def reused(key: RequestKey) -> DomainError:
    return DomainError(
        "idempotency-key-reused",
        f"used before for another request on {key.method} {key.route};"
        " a new request needs a new key",
        field=_FIELD,
    )


def in_flight(key: RequestKey) -> DomainError:
    return DomainError(
        "idempotency-key-in-flight",
        "a request with this key is still being processed; retry later",
        refusal=Refusal.CONFLICT,
        field=_FIELD,
    )


_LOOKUP = """
SELECT fingerprint, status, headers, body FROM idempotency_keys
WHERE caller = $1 AND method = $2 AND route = $3 AND key = $4
"""
_RECORD = """
INSERT INTO idempotency_keys (caller, method, route, key, fingerprint, status, headers, body)
VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
ON CONFLICT (caller, method, route, key) DO NOTHING
"""


async def check(conn: Any, key: RequestKey) -> Any:
    """The key's stored row (None if unused); 422 if it was used with another request."""
    row = await conn.fetchrow(_LOOKUP, *key.row())
    if row is not None and not hmac.compare_digest(bytes(row["fingerprint"]), key.fingerprint):
        raise reused(key)
    return row


async def claim(conn: Any, key: RequestKey) -> None:
    """Inside the command's transaction, before its first write: 409 if another request with
    this key holds it. The lock ends with the transaction."""
    if not await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", key.lock_id
    ):
        raise in_flight(key)


async def record(conn: Any, key: RequestKey, answer: Response | None = None) -> None:
    """Store the key (and, for `once`, its first answer)."""
    status = headers = body = None
    if answer is not None:
        status, body = answer.status_code, bytes(answer.body)
        kept = {k: v for k, v in answer.headers.items() if k.lower() in KEPT_HEADERS}
        headers = json.dumps(kept)
    await conn.execute(_RECORD, *key.row(), key.fingerprint, status, headers, body)


async def once(
    pool: Any, key: RequestKey | None, run: Callable[[], Awaitable[Response]]
) -> Response:
    """Run a request answered by more than one transaction at most once per key: a retry gets
    the first successful answer; a failed one is not kept, so it may be retried."""
    if key is None:
        return await run()
    async with pool.acquire() as conn:
        row = await check(conn, key)
        if row is not None and row["status"] is not None:
            return _stored(row)
        if not await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key.lock_id
        ):
            raise in_flight(key)
        try:
            row = await check(conn, key)  # a run that finished before this one took the lock
            if row is not None and row["status"] is not None:
                return _stored(row)
            answer = await run()
            if 200 <= answer.status_code < 300:
                await record(conn, key, answer)
            return answer
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key.lock_id)


def _stored(row: Any) -> Response:
    headers = row["headers"]
    if isinstance(headers, str):
        headers = json.loads(headers)
    return Response(content=bytes(row["body"]), status_code=row["status"], headers=headers)
