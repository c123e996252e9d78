"""Request bodies and responses of the checkpoint and duty-shift API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.checkpoint.domain.checkpoints import CLIENT_ID_PATTERN
from shared.contracts.checkpoint import CheckpointLevel, CheckpointPolicy, DutyRole
from shared.horizon import CalendarTime
from shared.scrub import FreeText

_POLICY_EXAMPLE: JsonDict = {
    "residents_only": True,
    "health_code_colours": ["green"],
    "test_report_max_hours": 48,
    "temperature_threshold": 37.3,
    "risk_area_arrivals": "refer",
}

MAX_TEST_REPORT_HOURS = 30 * 24


class PolicyIn(CheckpointPolicy):
    """A policy as a request sets it: the report age is bounded (a larger one overflowed the
    time arithmetic of every crossing judged by it)."""

    test_report_max_hours: int | None = Field(
        None,
        ge=1,
        le=MAX_TEST_REPORT_HOURS,
        description="a negative nucleic-acid report no older than this is required",
    )


# -- checkpoints -----------------------------------------------------------------------------


class CheckpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "gwm-east",
                    "node_id": "guanwangmiao",
                    "name": "关王庙乡东卡口",
                    "level": "township",
                    "policy": {**_POLICY_EXAMPLE, "residents_only": False},
                },
                {
                    "id": "xingfu-north-gate",
                    "node_id": "xingfu-compound",
                    "name": "幸福小区北门",
                    "level": "compound",
                    "policy": _POLICY_EXAMPLE,
                },
            ]
        },
    )

    id: str | None = Field(
        None, pattern=CLIENT_ID_PATTERN, description="client id; retrying with it is idempotent"
    )
    node_id: str = Field(min_length=1, max_length=100, description="the place the gate guards")
    name: str = Field(min_length=1, max_length=100)
    level: CheckpointLevel
    policy: PolicyIn = Field(default_factory=PolicyIn)
    opened_at: CalendarTime | None = Field(
        None,
        description="when the gate opened (default now); crossings before it are refused, "
        "and the opening policy applies from then",
    )


class PolicyChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"policy": _POLICY_EXAMPLE, "effective_from": "2020-02-10T00:00:00+08:00"}]
        },
    )

    policy: PolicyIn
    effective_from: CalendarTime | None = Field(
        None,
        description="crossings from this moment on are judged by the policy (default now); "
        "may lie in the future; not before the opening",
    )


class Reason(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "疫情解除,撤除卡点"}]}
    )

    reason: FreeText = Field(min_length=1, max_length=500)


class PolicyPeriodOut(BaseModel):
    effective_from: datetime
    version: int = Field(description="the checkpoint version that set it")
    policy: CheckpointPolicy


class CheckpointOut(BaseModel):
    id: str
    node_id: str
    name: str
    level: CheckpointLevel
    policy: CheckpointPolicy | None = Field(description="the policy in force now")
    policies: list[PolicyPeriodOut] = Field(description="every policy with when it applies")
    opened_at: datetime
    opened_by: str | None
    closed_at: datetime | None
    close_reason: str | None
    version: int


# -- duty shifts -----------------------------------------------------------------------------


class ShiftCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "gwm-east-20200205-police-day",
                    "sub": "police-li",
                    "party_id": "pcs-guanwangmiao",
                    "role": "police",
                    "starts_at": "2020-02-05T08:00:00+08:00",
                    "ends_at": "2020-02-05T20:00:00+08:00",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    sub: str = Field(min_length=1, max_length=200, description="token sub of the person on duty")
    party_id: str | None = Field(None, max_length=100, description="the registry's party")
    role: DutyRole = Field(
        description="police (派出所民警), community_cadre (社区干部), property_guard (物业保安), "
        "health_worker (社区卫生服务中心人员) or volunteer"
    )
    starts_at: CalendarTime
    ends_at: CalendarTime


class ShiftOut(BaseModel):
    id: str
    checkpoint_id: str
    sub: str
    party_id: str | None
    role: DutyRole
    starts_at: datetime
    ends_at: datetime
    cancelled: bool
    version: int


class Span(BaseModel):
    start: datetime
    end: datetime


class CoverageOut(BaseModel):
    """24-hour staffing of a gate on a day (in the system's zone)."""

    checkpoint_id: str
    date: date
    start: datetime
    end: datetime
    complete: bool = Field(description="every hour held, by every required role")
    gaps: list[Span] = Field(description="when nobody is on duty")
    required_roles: list[DutyRole]
    missing_roles: list[DutyRole] = Field(description="required roles nobody holds that day")
    role_gaps: dict[str, list[Span]] = Field(description="per required role, when it is missing")
    shifts: list[ShiftOut]
