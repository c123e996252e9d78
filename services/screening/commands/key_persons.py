"""Request bodies and responses of the risk-area, rules, inquiry and key-person API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from shared.contracts.screening import KeyReason, TravelStop
from shared.horizon import CalendarDay, FactTime, example_time
from shared.scrub import FreeText

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$"
MAX_BATCH = 5000

WUHAN: dict[str, Any] = {
    "place": "湖北省武汉市",
    "region_code": "420100",
    "arrived_on": "2020-01-10",
    "left_on": "2020-01-20",
}


# -- risk areas ------------------------------------------------------------------------------


class RiskAreaCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "wuhan-2020",
                    "name": "湖北省武汉市",
                    "level": "high",
                    "region_codes": ["4201"],
                    "valid_from": "2020-01-01",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    level: Literal["high", "medium", "low"] = "high"
    region_codes: list[str] = Field(
        min_length=1,
        max_length=500,
        description="administrative division code prefixes: 42 is 湖北, 4201 is 武汉",
    )
    valid_from: CalendarDay
    valid_to: CalendarDay | None = None


class RiskAreaLift(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"lifted_on": "2020-04-08", "reason": "武汉解封"}]},
    )

    lifted_on: CalendarDay = Field(description="the first day the area is no longer a risk area")
    reason: FreeText = Field(min_length=1, max_length=500)


class RiskAreaOut(BaseModel):
    id: str
    name: str
    level: str
    region_codes: list[str]
    valid_from: date
    valid_to: date | None
    lifted_on: date | None
    lift_reason: str | None
    version: int


# -- rules -----------------------------------------------------------------------------------


class RulesChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"fever_threshold": 37.3, "look_back_days": 14}]},
    )

    fever_threshold: float = Field(ge=36.0, le=39.0, description="°C; a reading at it is a fever")
    look_back_days: int = Field(ge=1, le=60, description="how far back a risk-area stay counts")


class RulesOut(BaseModel):
    fever_threshold: float
    look_back_days: int
    version: int = Field(description="0 while the defaults apply")
    changed_at: datetime | None = None
    changed_by: str | None = None


# -- inquiries -------------------------------------------------------------------------------


class TravelStopIn(TravelStop):
    """A stop of the travel told at an inquiry: history, so not within the fact horizon, but
    on days of the calendar."""

    arrived_on: CalendarDay | None = None
    left_on: CalendarDay | None = None


class InquiryFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(pattern=ID_PATTERN)
    travel: list[TravelStopIn] = Field(default_factory=list, max_length=50)
    close_contact: bool = Field(False, description="contact with a confirmed or suspected case")
    symptoms: list[FreeText] = Field(
        default_factory=list, max_length=20, examples=[["发热", "咳嗽"]]
    )
    temperature: float | None = Field(None, ge=34.0, le=43.0, description="°C")


class InquiryCreate(InquiryFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "person_id": "p-zhangsan",
                    "travel": [WUHAN],
                    "close_contact": False,
                    "symptoms": [],
                    "temperature": 36.6,
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    occurred_at: FactTime | None = Field(None, description="when it was asked; default now")


class InquiryItem(InquiryFields):
    """One inquiry of an offline upload: its client id and when it was asked are required."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    occurred_at: FactTime


class InquiryBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "inq-0001",
                            "person_id": "p-zhangsan",
                            "travel": [WUHAN],
                            "symptoms": ["发热"],
                            "temperature": 37.5,
                            "occurred_at": example_time(1, 9, 30),
                        }
                    ]
                }
            ]
        },
    )

    # each item is validated on its own, so one bad item is an error in its result only
    items: Annotated[list[SkipValidation[InquiryItem]], Field(min_length=1, max_length=MAX_BATCH)]


class DivisionOut(BaseModel):
    region_code: str = Field(description="GB/T 2260 code", examples=["420100"])
    name: str = Field(examples=["湖北省武汉市"])


class StopPlace(BaseModel):
    """How a travel stop was placed: by its `region_code`, else by its place name."""

    status: Literal["resolved", "ambiguous", "unknown"] = Field(
        description="ambiguous: the name is that of several divisions (鼓楼区); unknown: of"
        " none. Both are unresolved and flag `unresolved_travel` when the stay could have"
        " been in an active risk area"
    )
    division: DivisionOut | None = Field(description="the division the stop was taken to be")
    candidates: list[DivisionOut] = Field(description="for an ambiguous name, the divisions")


class InquiryOut(BaseModel):
    id: str
    person_id: str
    household_id: str | None
    travel: list[TravelStop]
    close_contact: bool
    symptoms: list[str]
    temperature: float | None
    inquirer: str
    occurred_at: datetime
    day: date = Field(description="the local day the inquiry belongs to")
    travel_resolution: list[StopPlace] = Field(
        description="one per stop of `travel`, in its order: where the rules placed it"
    )
    matched_reasons: list[KeyReason] = Field(description="what the rules found in the answers")
    flagged_reasons: list[KeyReason] = Field(
        description="reasons this inquiry newly flagged (empty when already flagged for them)"
    )
    version: int


class ItemOut(BaseModel):
    index: int
    id: str | None
    status: Literal["created", "unchanged", "error"]
    code: str | None = None
    field: str | None = None
    reason: str | None = None
    flagged_reasons: list[KeyReason] | None = None


class BatchOut(BaseModel):
    created: int
    unchanged: int
    errors: int
    results: list[ItemOut]


# -- key persons -----------------------------------------------------------------------------


class KeyPersonOut(BaseModel):
    subject_id: str
    node_id: str | None = Field(description="the household, or the place of the flag for h: ids")
    status: Literal["flagged", "cleared"]
    reasons: list[KeyReason]
    flagged_since: datetime
    last_flagged_at: datetime
    cleared_at: datetime | None
    clear_reason: str | None
    document_masked: str | None
    name_masked: str | None
    version: int


class KeyPersonEntry(BaseModel):
    version: int
    type: Literal["KeyPersonFlagged", "KeyPersonCleared"]
    occurred_at: datetime
    recorded_at: datetime
    actor: str | None
    reasons: list[KeyReason] | None = None
    source: str | None = None
    source_id: str | None = None
    reason: str | None = None

    @classmethod
    def of(
        cls,
        version: int,
        type_: str,
        occurred: datetime,
        recorded: datetime,
        actor: str | None,
        data: dict[str, Any],
    ) -> KeyPersonEntry:
        return cls(
            version=version,
            type=type_,
            occurred_at=occurred,
            recorded_at=recorded,
            actor=actor,
            reasons=data.get("reasons"),
            source=data.get("source"),
            source_id=data.get("source_id"),
            reason=data.get("reason"),
        )


class KeyPersonDetail(KeyPersonOut):
    history: list[KeyPersonEntry]


class KeyPersonClear(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "居家观察14天期满, 无异常"}]}
    )

    reason: FreeText = Field(min_length=1, max_length=500)
