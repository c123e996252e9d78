"""Request bodies and responses of the parties-and-chains API (包保责任链)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.registry import ChainTier
from shared.horizon import CalendarDay
from shared.scrub import FreeText

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$"
CLIENT_ID = "Client-generated id; retrying with the same id and body is idempotent"


ClientId = Annotated[str | None, Field(pattern=ID_PATTERN, description=CLIENT_ID)]
Ref = Annotated[str, Field(pattern=ID_PATTERN)]


# -- templates ---------------------------------------------------------------------------------


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int = Field(ge=1, le=20, description="1 is the top of the chain")
    name: str = Field(min_length=1, max_length=100, examples=["领导包片"])
    party_role: str = Field(min_length=1, max_length=40, examples=["leader"])
    covers: Literal["node", "person"] = "node"
    node_kinds: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="kinds of node this tier covers; empty when it covers persons",
        examples=[["area"]],
    )

    def to_tier(self) -> ChainTier:
        return ChainTier(**self.model_dump())


class ChainTemplateCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "baobao-3",
                    "name": "三级包保",
                    "tiers": [
                        {
                            "level": 1,
                            "name": "街道包社区",
                            "party_role": "street_cadre",
                            "node_kinds": ["community"],
                        },
                        {
                            "level": 2,
                            "name": "网格员包楼栋",
                            "party_role": "grid_worker",
                            "node_kinds": ["building"],
                        },
                        {
                            "level": 3,
                            "name": "医护人员包人",
                            "party_role": "medic",
                            "covers": "person",
                        },
                    ],
                }
            ]
        },
    )

    id: ClientId = None
    name: str = Field(min_length=1, max_length=100)
    tiers: list[TierIn] = Field(min_length=1, max_length=20)


class ChainTemplateOut(BaseModel):
    id: str
    name: str
    tiers: list[ChainTier]
    version: int


# -- instances ---------------------------------------------------------------------------------


class ChainInstanceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "puyang-2020",
                    "template_id": "baobao-4",
                    "root_node_id": "d-puyang",
                    "valid_from": "2020-01-27",
                }
            ]
        },
    )

    id: ClientId = None
    template_id: Ref = Field(description="the chain template to apply")
    root_node_id: Ref = Field(description="the place the chain covers, with everything under it")
    valid_from: CalendarDay
    valid_to: CalendarDay | None = Field(None, description="last valid day; null while open")


class PeriodEnd(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"valid_to": "2020-03-31", "reason": "疫情解除"}]},
    )

    valid_to: CalendarDay = Field(description="the last valid day")
    reason: FreeText = Field(min_length=1, max_length=500)


class ChainInstanceOut(BaseModel):
    id: str
    template_id: str
    root_node_id: str
    valid_from: date
    valid_to: date | None = Field(description="last valid day: the end date once ended")
    ended: bool
    end_reason: str | None
    version: int


# -- parties -----------------------------------------------------------------------------------


class PartyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "p-guancang-pcs",
                    "kind": "unit",
                    "name": "官仓派出所",
                    "role": "police_station",
                    "node_id": "s-guancang",
                },
                {"kind": "person", "name": "王医生", "role": "medic", "sub": "wang.yisheng"},
            ]
        },
    )

    id: ClientId = None
    kind: Literal["person", "unit"]
    name: str = Field(
        min_length=1, max_length=200, description="public name or title of the official or unit"
    )
    role: str = Field(min_length=1, max_length=40, examples=["medic"])
    node_id: Ref | None = Field(None, description="where the party belongs")
    phone: str | None = Field(
        None, max_length=30, description="contact phone; stored encrypted, masked elsewhere"
    )
    sub: str | None = Field(
        None, min_length=1, max_length=200, description="the login (token `sub`) of this party"
    )


class PartyOut(BaseModel):
    id: str
    kind: Literal["person", "unit"]
    name: str
    role: str
    node_id: str | None
    sub: str | None
    version: int
    phone_masked: str | None = None


# -- assignments -------------------------------------------------------------------------------


class AssignmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "instance_id": "puyang-2020",
                    "level": 4,
                    "party_id": "p-community-1",
                    "target_type": "node",
                    "target_id": "b-3",
                    "valid_from": "2020-01-27",
                }
            ]
        },
    )

    id: ClientId = None
    instance_id: Ref = Field(description="the chain instance")
    level: int = Field(ge=1, le=20, description="the tier of the chain")
    party_id: Ref = Field(description="the party who answers")
    target_type: Literal["node", "person"]
    target_id: str = Field(min_length=1, max_length=200, description="the node or person covered")
    valid_from: CalendarDay
    valid_to: CalendarDay | None = Field(None, description="last valid day; null while open")


class AssignmentOut(BaseModel):
    id: str
    instance_id: str
    level: int
    party_id: str
    target_type: Literal["node", "person"]
    target_id: str
    valid_from: date
    valid_to: date | None = Field(description="last valid day: the end date once ended")
    ended: bool
    end_reason: str | None
    version: int
