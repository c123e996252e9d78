"""Cursor pagination: signed opaque cursors, `{"items": [...], "next_cursor": ...}` pages.

A cursor is the position after a page's last item, signed with a key derived from the
service's `id_hmac_key` and bound to the route that issued it. A list's SQL can then trust
the position it is given: a crafted one (`{"after": 1}` where a text id is compared, a
bigint out of range, a cursor of another list) is refused as 422 naming `query.cursor`
before it reaches PostgreSQL, instead of failing there as a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query, Request
from pydantic import BaseModel

from shared.problems import Problem

T = TypeVar("T")
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 1000
_SIGNATURE_BYTES = 16


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@lru_cache(maxsize=8)
def _signing_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"grid-epi:pagination-cursor", hashlib.sha256).digest()


def _signature(request: Request, body: bytes) -> bytes:
    key = _signing_key(request.app.state.settings.id_hmac_key)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    mac = hmac.new(key, route.encode() + b"\n" + body, hashlib.sha256)
    return mac.digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(request: Request, position: dict[str, Any]) -> str:
    body = orjson.dumps(position)
    return f"{_b64(body)}.{_b64(_signature(request, body))}"


def _not_ours() -> Problem:
    return Problem(
        422,
        "query.cursor: not a cursor this list issued",
        slug="validation-error",
        errors=[{"field": "query.cursor", "reason": "not a cursor this list issued"}],
    )


def decode_cursor(request: Request, cursor: str | None) -> dict[str, Any]:
    """The position a cursor of this route holds; {} for the first page."""
    if not cursor:
        return {}
    body_text, _, signature_text = cursor.partition(".")
    try:
        body, signature = _unb64(body_text), _unb64(signature_text)
    except (binascii.Error, ValueError) as exc:
        raise _not_ours() from exc
    if not hmac.compare_digest(signature, _signature(request, body)):
        raise _not_ours()
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise _not_ours()
    return value


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
]


def page_of(request: Request, items: list[T], limit: int, position: Any) -> Page[T]:
    """A page from up to `limit + 1` fetched items; `position(item)` is what the next page's
    cursor holds."""
    more = len(items) > limit
    items = items[:limit]
    cursor = encode_cursor(request, position(items[-1])) if more else None
    return Page[T](items=items, next_cursor=cursor)
