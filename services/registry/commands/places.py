"""Request bodies and responses of the place-tree API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.scrub import FreeText

NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$"


class NodeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "sanxi", "parent_id": "jintang", "kind": "township", "name": "三溪镇"}
            ]
        },
    )

    id: str | None = Field(
        None,
        pattern=NODE_ID_PATTERN,
        description="Client-generated id; retrying with the same id and body is idempotent",
    )
    parent_id: str | None = Field(description="null creates a root (admin only)")
    kind: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)


class NodeRename(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "三溪镇"}]})

    name: str = Field(min_length=1, max_length=200)


class NodeMove(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"parent_id": "guancang"}]}
    )

    parent_id: str = Field(pattern=NODE_ID_PATTERN)


class NodeRetire(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "并入第二网格"}]}
    )

    reason: FreeText = Field(min_length=1, max_length=500)


class NodeOut(BaseModel):
    id: str
    parent_id: str | None
    kind: str
    name: str
    path: str
    version: int
    retired: bool = False
