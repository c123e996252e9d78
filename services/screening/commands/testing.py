"""Request bodies and responses of the test-round, sample and vaccination API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from services.screening.commands.key_persons import ID_PATTERN, MAX_BATCH
from shared.horizon import CalendarDay, FactTime, example_day, example_time


class RoundCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "yutun-r3",
                    "node_id": "yutun",
                    "number": 3,
                    "starts_on": example_day(-1),
                    "ends_on": example_day(),
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    node_id: str = Field(description="the place tested (应检尽检 over everyone living under it)")
    number: int = Field(ge=1, le=10_000, description="第N轮, unique at the place")
    starts_on: CalendarDay
    ends_on: CalendarDay


class Coverage(BaseModel):
    persons: int = Field(description="registered, non-voided persons living under the place")
    sampled: int = Field(description="of them, those with a sample in this round")
    not_sampled: int
    coverage_pct: float
    samples: int = Field(description="samples taken in this round, from anyone")
    resulted: int
    positive: int


class RoundOut(BaseModel):
    id: str
    node_id: str
    number: int
    starts_on: date
    ends_on: date
    version: int
    coverage: Coverage


class SampleFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(pattern=ID_PATTERN)
    round_id: str | None = Field(None, pattern=ID_PATTERN)


class SampleCreate(SampleFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"id": "s-000123", "person_id": "p-zhangsan", "round_id": "yutun-r3"}]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    occurred_at: FactTime | None = Field(None, description="when it was taken; default now")


class SampleItem(SampleFields):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    occurred_at: FactTime


class SampleBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "s-000124",
                            "person_id": "p-lisi",
                            "round_id": "yutun-r3",
                            "occurred_at": example_time(1, 8, 15),
                        }
                    ]
                }
            ]
        },
    )

    items: Annotated[list[SkipValidation[SampleItem]], Field(min_length=1, max_length=MAX_BATCH)]


class SampleResult(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"result": "negative"}]}
    )

    result: Literal["negative", "positive", "invalid"]


class SampleOut(BaseModel):
    id: str
    person_id: str
    round_id: str | None
    collected_by: str
    collected_at: datetime
    day: date
    result: Literal["negative", "positive", "invalid"] | None
    resulted_at: datetime | None
    version: int


class DoseCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "d-000001",
                    "person_id": "p-zhangsan",
                    "dose_number": 1,
                    "vaccine": "北京生物 新冠病毒灭活疫苗(Vero细胞)",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=ID_PATTERN)
    person_id: str = Field(pattern=ID_PATTERN)
    dose_number: int = Field(ge=1, le=5)
    vaccine: str = Field(min_length=1, max_length=100)
    occurred_at: FactTime | None = Field(None, description="when it was given; default now")


class DoseOut(BaseModel):
    id: str
    person_id: str
    dose_number: int
    vaccine: str
    given_by: str
    given_at: datetime
