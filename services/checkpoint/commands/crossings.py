"""Request bodies and responses of the crossing API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, model_validator
from pydantic.config import JsonDict

from services.checkpoint.domain.checkpoints import CLIENT_ID_PATTERN
from shared.batch import ItemResultBase
from shared.contracts.checkpoint import Decision, HealthCode
from shared.contracts.registry import DocumentType
from shared.horizon import CalendarTime, FactTime, example_time
from shared.scrub import FreeText

MAX_BATCH = 5000

_PERSON_EXAMPLE: JsonDict = {
    "id": "5b0c9f8e-1f7a-4d2b-8c3e-2a9d6e4f1b70",
    "checkpoint_id": "xingfu-north-gate",
    "occurred_at": example_time(1, 9, 12),
    "kind": "person",
    "direction": "in",
    "document_type": "resident_id",
    "document_number": "110105199001011237",
    "temperature": 36.5,
    "health_code": "green",
    "test_report_at": example_time(2, 15, 0),
    "origin": "湖北省武汉市江汉区",
    "origin_region_code": "420103",
}
_VEHICLE_EXAMPLE: JsonDict = {
    "id": "9d3e7a21-5c4b-4f0e-a8d1-7b2c3e4f5a61",
    "checkpoint_id": "xingfu-north-gate",
    "occurred_at": example_time(1, 9, 15),
    "kind": "vehicle",
    "direction": "in",
    "plate": "吉A12345",
    "passengers": [{"document_type": "resident_id", "document_number": "110105199001011237"}],
    "temperature": 36.6,
    "health_code": "green",
}


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_type: DocumentType = "resident_id"
    document_number: str = Field(min_length=1, max_length=40, description="as typed or scanned")


class CrossingFields(BaseModel):
    checkpoint_id: str = Field(min_length=1, max_length=100)
    kind: Literal["person", "vehicle"] = "person"
    direction: Literal["in", "out"]
    document_type: DocumentType = Field("resident_id", description="a person crossing")
    document_number: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="a person crossing: as typed or scanned; only its HMAC and masked form "
        "are kept",
    )
    plate: str | None = Field(None, min_length=1, max_length=20, description="a vehicle")
    passengers: list[DocumentIn] = Field(
        default_factory=list, max_length=60, description="a vehicle: everyone in it"
    )
    temperature: float | None = Field(None, description="°C; the highest in a vehicle")
    health_code: HealthCode | None = Field(None, description="the worst colour in a vehicle")
    test_report_at: CalendarTime | None = Field(
        None, description="when the negative nucleic-acid sample shown was taken"
    )
    origin: FreeText | None = Field(None, max_length=100, examples=["湖北省武汉市"])
    origin_region_code: str | None = Field(
        None, max_length=12, description="administrative division code of the origin"
    )

    @model_validator(mode="after")
    def _person_or_vehicle(self) -> CrossingFields:
        if self.kind == "person":
            if not self.document_number:
                raise ValueError("a person crossing needs document_number")
            if self.plate or self.passengers:
                raise ValueError("a person crossing has no plate or passengers")
        else:
            if not self.plate:
                raise ValueError("a vehicle crossing needs a plate")
            if self.document_number:
                raise ValueError("a vehicle lists its people under passengers")
        return self


class CrossingCreate(CrossingFields):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [_PERSON_EXAMPLE, _VEHICLE_EXAMPLE]}
    )

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN, description="the device's id")
    occurred_at: FactTime | None = Field(None, description="at the gate (default now)")


class CrossingItem(CrossingFields):
    """One crossing of an offline upload: the device's own id and the time at the gate."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PERSON_EXAMPLE]})

    id: str = Field(pattern=CLIENT_ID_PATTERN, description="the device's id of the crossing")
    occurred_at: FactTime = Field(description="at the gate; may be days ago")


class CrossingBatch(BaseModel):
    """Items are checked one by one: a bad item is an `error` in the results, never a
    rejected upload."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [_PERSON_EXAMPLE, _VEHICLE_EXAMPLE]}]},
    )

    # the schema shows CrossingItem; each item is validated on its own so errors are per item
    items: list[SkipValidation[CrossingItem]] = Field(min_length=1, max_length=MAX_BATCH)


class PassengerOut(BaseModel):
    document_type: str
    document_masked: str
    id_hmac: str
    subject_id: str | None


class CrossingOut(BaseModel):
    id: str
    checkpoint_id: str
    node_id: str
    kind: Literal["person", "vehicle"]
    direction: Literal["in", "out"]
    occurred_at: datetime
    day: date = Field(description="the day of occurred_at in the system zone")
    recorded_at: datetime
    document_type: str | None
    document_masked: str | None
    subject_id: str | None = Field(description="the registry person id, when recognised")
    plate: str | None
    passengers: list[PassengerOut]
    temperature: float | None
    health_code: HealthCode | None
    test_report_at: datetime | None
    origin: str | None
    origin_region_code: str | None
    decision: Decision
    reasons: list[str] = Field(examples=[["risk_area_origin"]])
    views_as_of: datetime | None = Field(
        description="set when the crossing is older than the live window: residency and "
        "vehicles were judged as they are at this time, not at the crossing's"
    )
    breaches: list[str] = Field(description="subjects under quarantine who tried to go out")
    recorded_by: str
    version: int


class ItemResult(ItemResultBase):
    decision: Decision | None = None
    reasons: list[str] = Field(default_factory=list)
    views_as_of: datetime | None = None
    breaches: list[str] = Field(default_factory=list)


class BatchOut(BaseModel):
    received: int
    created: int
    unchanged: int
    errors: int
    results: list[ItemResult]
