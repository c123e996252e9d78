"""Request bodies and responses of the household, person and vehicle API."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from services.registry.commands.places import NODE_ID_PATTERN
from shared.contracts.registry import AgeBand, DocumentType, Residency
from shared.scrub import FreeText


class HouseholdCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "b3-u2-301",
                    "parent_id": "b3-u2",
                    "door_number": "3-2-301",
                    "address": "三溪镇幸福小区3栋2单元301",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=NODE_ID_PATTERN)
    parent_id: str = Field(description="the building, unit, floor, compound or villager group")
    door_number: str = Field(min_length=1, max_length=40)
    address: FreeText | None = Field(None, max_length=200)


class HouseholdOut(BaseModel):
    id: str
    parent_id: str
    path: str
    door_number: str
    address: str | None
    version: int
    persons: list[PersonOut] = Field(default_factory=list)
    vehicles: list[VehicleOut] = Field(default_factory=list)


class PersonCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "household_id": "b3-u2-301",
                    "name": "张三",
                    "document_type": "resident_id",
                    "document_number": "110105199001011237",
                    "phone": "13812345678",
                    "residency": "resident",
                    "tags": ["低保"],
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=NODE_ID_PATTERN)
    household_id: str
    name: str = Field(min_length=1, max_length=100)
    document_type: DocumentType = "resident_id"
    document_number: str = Field(min_length=1, max_length=40)
    phone: str | None = Field(None, max_length=30)
    residency: Residency = "resident"
    tags: list[FreeText] = Field(
        default_factory=list, max_length=20, description="特困, 低保, 残疾, 孤寡老人 or free tags"
    )


class PersonOut(BaseModel):
    id: str
    household_id: str
    residency: Residency
    tags: list[str]
    document_type: DocumentType
    document_masked: str
    name_masked: str
    phone_masked: str | None
    age_band: AgeBand | None = Field(
        description="age band on `age_band_on`, the day of registration (resident IDs only)"
    )
    age_band_on: date | None
    sex: str | None
    voided: bool
    version: int
    clear: dict[str, str] | None = Field(
        None,
        description="clear name, document_number and phone: only with reveal=true, "
        "for roles allowed to, and every such read is logged",
    )


class PersonLookup(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"document_type": "resident_id", "number": "110105199001011237"}]
        },
    )

    document_type: DocumentType = "resident_id"
    number: str = Field(min_length=1, max_length=40)


class PersonMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    household_id: str


class PersonResidency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    residency: Residency


class PersonTags(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"add": ["孤寡老人"], "remove": ["低保"]}]}
    )

    add: list[FreeText] = Field(default_factory=list, max_length=20)
    remove: list[FreeText] = Field(default_factory=list, max_length=20)


class PersonContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(None, max_length=30)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: FreeText = Field(min_length=1, max_length=500)


class VehicleCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"household_id": "b3-u2-301", "plate": "吉A12345"}]},
    )

    id: str | None = Field(None, pattern=NODE_ID_PATTERN)
    household_id: str
    plate: str = Field(min_length=5, max_length=12)


class VehicleOut(BaseModel):
    id: str
    household_id: str
    plate: str
    version: int


class AccessLogEntry(BaseModel):
    id: int
    at: str
    actor: str
    roles: list[str]
    person_id: str
    fields: list[str]
    reason: str
    correlation_id: str | None


HouseholdOut.model_rebuild()
