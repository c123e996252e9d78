"""The event envelope shared by every service and every consumer (DESIGN.md §3).

An envelope is what travels on Kafka: the payload (`data`) plus the facts every consumer
needs to order, dedupe, trace and place it. Its JSON form is the published wire format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    type: str = Field(min_length=1, examples=["NodeCreated"])
    schema_version: int = Field(ge=1)
    stream_id: str = Field(min_length=1)
    stream_type: str = Field(min_length=1, examples=["node"])
    version: int = Field(ge=1, description="Position of the event in its stream, gapless from 1")
    occurred_at: AwareDatetime = Field(description="When it happened in the field")
    recorded_at: AwareDatetime = Field(description="When the service stored it")
    node_id: str | None = Field(default=None, description="The place the event concerns")
    actor: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate(orjson.loads(raw))


def utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
