"""Cursor pagination: opaque cursors, `{"items": [...], "next_cursor": ...}` pages."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from shared.problems import Problem

T = TypeVar("T")
MAX_LIMIT = 1000


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise Problem(422, "query.cursor: not a cursor this API issued", slug="validation-error",
                      errors=[{"field": "query.cursor", "reason": "malformed"}]) from exc
    if not isinstance(value, dict):
        raise Problem(422, "query.cursor: not a cursor this API issued", slug="validation-error",
                      errors=[{"field": "query.cursor", "reason": "malformed"}])
    return value


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


def page_of(items: list[T], limit: int, key: Any) -> Page[T]:
    """A page from up to `limit + 1` fetched items; `key(item)` is the cursor position."""
    more = len(items) > limit
    items = items[:limit]
    return Page[T](items=items, next_cursor=encode_cursor(key(items[-1])) if more else None)
