"""Request bodies and responses of the care-task and place care-plan API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from services.screening.commands.watch import ID_PATTERN, MAX_BATCH
from shared.contracts.screening import TaskKind
from shared.horizon import FactTime, StartTime, example_time
from shared.scrub import FreeText

_TASK_EXAMPLE: dict[str, Any] = {
    "id": "t-20200201-0001",
    "target_id": "p-zhang-san",
    "task": "supplies",
    "occurred_at": example_time(1, 10, 20),
    "notes": "送米面油和蔬菜",
}


class TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, pattern=ID_PATTERN, description="the client's task id")
    target_id: str = Field(
        min_length=1,
        max_length=200,
        description="a subject (person id or `h:<id_hmac>`) or the node id of a public place",
    )
    task: TaskKind = Field(
        description="call 电话问候, supplies 送生活物资, garbage 收垃圾, disinfection 消毒, "
        "shopping 代购, counselling 心理疏导, other"
    )
    occurred_at: FactTime | None = Field(None, description="when it was done; default now")
    notes: FreeText | None = Field(None, max_length=500)


class TaskCreate(TaskFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_TASK_EXAMPLE]})


class TaskItem(TaskFields):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="the client's task id (required)")
    occurred_at: FactTime


class TaskBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        _TASK_EXAMPLE,
                        {
                            "id": "t-20200201-0002",
                            "target_id": "stairwell-b3",
                            "task": "disinfection",
                            "occurred_at": example_time(1, 8, 5),
                        },
                    ]
                }
            ]
        },
    )

    items: list[SkipValidation[TaskItem]] = Field(min_length=1, max_length=MAX_BATCH)


class TaskOut(BaseModel):
    id: str
    target_id: str
    target_kind: Literal["subject", "place"]
    task: TaskKind
    slot_day: date
    slot: str = Field(description="the plan window it counts for; 00:00-24:00 if unplanned")
    occurred_at: datetime
    done_by: str
    notes: str | None
    late: bool


class PlacePlanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "node_id": "b3-stairwell",
                    "party_id": "party-property-co",
                    "task": "disinfection",
                    "times_per_day": 3,
                }
            ]
        },
    )

    node_id: str = Field(min_length=1, description="the public place: stairwell, lift, market")
    party_id: str | None = Field(None, description="who answers for it (物业, 社区)")
    task: Literal["disinfection", "garbage"] = "disinfection"
    times_per_day: int = Field(ge=0, le=24, description="0 ends the plan")
    windows: list[str] | None = Field(
        None,
        description="explicit windows (HH:MM-HH:MM), one per time; default: the configured "
        "day split evenly",
        examples=[["07:00-09:00", "12:00-14:00", "18:00-20:00"]],
    )
    effective_from: StartTime | None = Field(None, description="default: now")


class PlacePlanOut(BaseModel):
    node_id: str
    task: str
    times_per_day: int
    slots: list[str]
    party_id: str | None
    effective_from: datetime
    version: int


class CareDone(BaseModel):
    task_id: str
    task: TaskKind
    slot_day: date
    slot: str
    occurred_at: datetime
    done_by: str
    notes: str | None
    late: bool


class CareMiss(BaseModel):
    task: TaskKind
    slot_day: date
    slot: str
    party_id: str | None
    closed_at: datetime


class CareOut(BaseModel):
    target_id: str
    target_kind: Literal["subject", "place"]
    plan: dict[str, list[str]] = Field(
        description="task -> windows due today for the target (from its watch or place plan)"
    )
    done: list[CareDone]
    missed: list[CareMiss]
