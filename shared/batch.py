"""Offline batch uploads (`POST /v1/<things>:batch`): chunks and per-item results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

ItemStatus = Literal["created", "unchanged", "error"]
Refusal = Literal["invalid", "not_found", "conflict", "forbidden"]


class ItemResultBase(BaseModel):
    """What became of one item of an upload; services add the fields their items need."""

    index: int = Field(description="position of the item in the upload")
    id: str | None
    status: ItemStatus
    code: str | None = Field(None, examples=["unknown-household"])
    refusal: Refusal | None = Field(
        None, description="invalid (422-like), not_found, conflict (409-like), forbidden (403-like)"
    )
    field: str | None = None
    reason: str | None = None


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Group `items` into lists of `size` (the last may be shorter), lazily: each chunk is
    committed in one short transaction."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
