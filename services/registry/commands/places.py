"""Request bodies and responses of the registry API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NodeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"parent_id": "d-jintang", "kind": "street", "name": "三溪镇"}]
        },
    )

    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$",
        description="Client-generated id; retrying with the same id and body is idempotent",
    )
    parent_id: str | None = Field(description="null creates a root (admin only)")
    kind: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)


class NodeOut(BaseModel):
    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int
