"""Request bodies and responses of the watch, quarantine and temperature API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from shared.batch import ItemResultBase
from shared.contracts.screening import QuarantineType
from shared.horizon import CalendarDay, FactTime, StartTime, example_day, example_time
from shared.scrub import FreeText

MAX_BATCH = 5000
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
SUBJECT = Field(
    min_length=1,
    max_length=200,
    description="a registered person id, or `h:<id_hmac>` for someone known only by document",
    examples=["p-zhang-san"],
)
Status = Literal["none", "under_observation", "quarantined", "released", "transferred"]


class ObservationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject_id": "p-zhang-san",
                    "planned_end": example_day(14),
                    "carer_party_id": "party-village-doctor",
                }
            ]
        },
    )

    subject_id: str = SUBJECT
    node_id: str | None = Field(
        None,
        description="required for `h:` subjects (where they stay); a registered person's "
        "household is used otherwise",
    )
    starts_at: StartTime | None = Field(None, description="default: now")
    planned_end: CalendarDay | None = None
    carer_party_id: str | None = Field(None, description="the named carer (专人)")


class QuarantineCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "q-2020-0001",
                    "subject_id": "p-zhang-san",
                    "type": "home",
                    "place": "三溪镇幸福小区3栋2单元301",
                    "starts_at": example_time(1, 9, 0),
                    "planned_end": example_day(14),
                    "carer_party_id": "party-village-doctor",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    subject_id: str = SUBJECT
    node_id: str | None = Field(None, description="required for `h:` subjects")
    type: QuarantineType
    place: FreeText | None = Field(None, max_length=200, description="address or site")
    starts_at: StartTime | None = Field(None, description="default: now")
    planned_end: CalendarDay
    carer_party_id: str | None = None


class Extension(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"planned_end": example_day(21), "reason": "核酸复检未出结果"}]
        },
    )

    planned_end: CalendarDay
    reason: FreeText = Field(min_length=1, max_length=500)


class Release(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "观察期满，无异常，解除隔离"}]}
    )

    reason: FreeText = Field(min_length=1, max_length=500)


class Transfer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"to": "hospital", "destination": "金堂县人民医院发热门诊"}]
        },
    )

    to: Literal["hospital", "centralized"]
    destination: FreeText = Field(min_length=1, max_length=200)


class Transition(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: str | None
    data: dict[str, Any]


class WatchOut(BaseModel):
    subject_id: str
    state: Status
    kind: str | None = Field(None, description="observation, home, home_medical, centralized")
    node_id: str | None = None
    quarantine_id: str | None = None
    place: str | None = None
    planned_end: date | None = None
    carer_party_id: str | None = None
    since: datetime | None = Field(None, description="start of the current or last watch")
    ended_at: datetime | None = None
    version: int
    history: list[Transition] = Field(default_factory=list)


class QuarantineOut(BaseModel):
    id: str
    subject_id: str
    node_id: str | None
    type: QuarantineType
    place: str | None
    starts_at: datetime
    planned_end: date
    carer_party_id: str | None
    status: Literal["active", "released", "transferred"]
    extensions: int
    ended_at: datetime | None
    end_reason: str | None
    transferred_to: str | None
    destination: str | None
    version: int = Field(description="version of the subject's watch stream (the ETag)")


# -- temperatures ----------------------------------------------------------------------------

_READING_EXAMPLE: dict[str, Any] = {
    "id": "r-20200201-0001",
    "subject_id": "p-zhang-san",
    "celsius": 36.6,
    "occurred_at": example_time(1, 8, 30),
}


class ReadingFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, pattern=ID_PATTERN, description="the client's reading id")
    subject_id: str = SUBJECT
    celsius: float = Field(description="30.0-45.0 °C", examples=[36.6])
    occurred_at: FactTime | None = Field(None, description="when it was taken; default now")


class ReadingCreate(ReadingFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_READING_EXAMPLE]})


class ReadingItem(ReadingFields):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="the client's reading id (required)")
    occurred_at: FactTime = Field(description="when it was taken in the field")


class ReadingBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        _READING_EXAMPLE,
                        {
                            **_READING_EXAMPLE,
                            "id": "r-20200201-0002",
                            "celsius": 37.5,
                            "occurred_at": example_time(1, 16, 10),
                        },
                    ]
                }
            ]
        },
    )

    # the schema shows ReadingItem; each item is validated on its own so errors are per item
    items: list[SkipValidation[ReadingItem]] = Field(min_length=1, max_length=MAX_BATCH)


class ReadingOut(BaseModel):
    id: str
    subject_id: str
    celsius: float
    occurred_at: datetime
    slot_day: date
    slot: str
    late: bool
    recorded_by: str


class ItemResult(ItemResultBase):
    slot_day: date | None = None
    slot: str | None = None
    late: bool | None = None


class BatchOut(BaseModel):
    received: int
    created: int
    unchanged: int
    errors: int
    results: list[ItemResult]


class FollowUpReading(BaseModel):
    reading_id: str
    celsius: float
    occurred_at: datetime
    slot_day: date
    slot: str
    late: bool
    recorded_by: str


class FollowUpMiss(BaseModel):
    slot_day: date
    slot: str
    closed_at: datetime


class FollowUpsOut(BaseModel):
    subject_id: str
    slots: list[str] = Field(description="the configured follow-up slots")
    readings: list[FollowUpReading]
    missed: list[FollowUpMiss]
