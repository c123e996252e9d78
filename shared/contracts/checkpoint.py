"""Events published by checkpoint on `checkpoint.events`: gates, policies, duty shifts, the
crossing ledger with the server's decisions, quarantine breaches.

A person crossing is known by `id_hmac` and a masked document number only; the clear number
typed or scanned at the gate is never stored or published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Catalog, EventPayload
from shared.contracts.registry import Residency

TOPIC = "checkpoint.events"

CheckpointLevel = Literal["county", "township", "village", "natural_village", "compound"]
HealthCode = Literal["green", "yellow", "red"]
Decision = Literal["admit", "deny", "persuade_return", "refer"]
DutyRole = Literal["police", "community_cadre", "property_guard", "health_worker", "volunteer"]


def _green_only() -> list[HealthCode]:
    return ["green"]


def _residents_and_temporary() -> list[Residency]:
    return ["resident", "temporary"]


class CheckpointPolicy(BaseModel):
    """How a gate judges a crossing (一检二测三登记; 逢人必检、逢车必查)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    residents_only: bool = Field(
        False,
        description="closed management: only residents of the "
        "guarded node (and their vehicles) may enter",
    )
    resident_types: list[Residency] = Field(
        default_factory=_residents_and_temporary,
        min_length=1,
        description="at a residents-only gate, the registry residency types that count as "
        "residents of the guarded node; a registered visitor (访客) is an outsider under closed "
        "management (封闭管理) unless named here",
    )
    health_code_colours: list[HealthCode] = Field(
        default_factory=_green_only, description="colours that pass"
    )
    test_report_max_hours: int | None = Field(
        None, ge=1, description="a negative nucleic-acid report no older than this is required"
    )
    temperature_threshold: float = Field(37.3, description="at or above: refer")
    risk_area_arrivals: Literal["persuade_return", "refer"] = "refer"


class CheckpointOpened(EventPayload):
    event_type = "CheckpointOpened"
    schema_version = 2

    checkpoint_id: str
    node_id: str = Field(description="the place the gate guards")
    name: str = Field(examples=["关王庙乡东卡口"])
    level: CheckpointLevel
    policy: CheckpointPolicy


class CheckpointPolicyChanged(EventPayload):
    """From `effective_from` on, crossings are judged by this policy."""

    event_type = "CheckpointPolicyChanged"
    schema_version = 2

    checkpoint_id: str
    policy: CheckpointPolicy
    effective_from: datetime


class CheckpointClosed(EventPayload):
    event_type = "CheckpointClosed"

    checkpoint_id: str
    reason: str


class DutyShiftScheduled(EventPayload):
    event_type = "DutyShiftScheduled"

    shift_id: str
    checkpoint_id: str
    sub: str = Field(description="token sub of the person on duty")
    party_id: str | None = None
    role: DutyRole
    starts_at: datetime
    ends_at: datetime


class DutyShiftCancelled(EventPayload):
    event_type = "DutyShiftCancelled"

    shift_id: str
    checkpoint_id: str
    reason: str


class Passenger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id_hmac: str
    document_type: str
    document_masked: str
    subject_id: str | None = Field(None, description="registry person id when recognised")


class CrossingRecorded(EventPayload):
    """One person or vehicle at a gate, with the server's decision and its reasons."""

    event_type = "CrossingRecorded"

    crossing_id: str
    checkpoint_id: str
    node_id: str
    kind: Literal["person", "vehicle"]
    direction: Literal["in", "out"]
    # a person
    id_hmac: str | None = None
    document_type: str | None = None
    document_masked: str | None = None
    subject_id: str | None = Field(None, description="registry person id when recognised")
    # a vehicle
    plate: str | None = None
    passengers: list[Passenger] = Field(default_factory=list)
    temperature: float | None = None
    health_code: HealthCode | None = None
    test_report_at: datetime | None = None
    origin: str | None = Field(None, examples=["湖北省武汉市"])
    origin_region_code: str | None = None
    decision: Decision
    reasons: list[str] = Field(
        description="machine-readable, e.g. not_resident, residency_visitor, fever"
    )
    views_as_of: datetime | None = Field(
        None, description="for late uploads: the views could only judge as of this time"
    )
    recorded_by: str


class QuarantineBreachAttempted(EventPayload):
    """A person under quarantine tried to go out through a gate (and was denied)."""

    event_type = "QuarantineBreachAttempted"

    crossing_id: str
    checkpoint_id: str
    subject_id: str
    id_hmac: str


# -- earlier versions ------------------------------------------------------------------------
#
# Version 1 of the events carrying a policy had no `resident_types`: a residents-only gate
# admitted everyone registered in a household under the guarded node, visitors included. They
# are kept for the contract files and the upcasters, and never produced.


class CheckpointPolicyV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", title="CheckpointPolicy")

    residents_only: bool = False
    health_code_colours: list[HealthCode] = Field(default_factory=_green_only)
    test_report_max_hours: int | None = Field(None, ge=1)
    temperature_threshold: float = 37.3
    risk_area_arrivals: Literal["persuade_return", "refer"] = "refer"


class CheckpointOpenedV1(EventPayload):
    model_config = ConfigDict(frozen=True, extra="ignore", title="CheckpointOpened")
    event_type = "CheckpointOpened"
    schema_version = 1

    checkpoint_id: str
    node_id: str
    name: str
    level: CheckpointLevel
    policy: CheckpointPolicyV1


class CheckpointPolicyChangedV1(EventPayload):
    model_config = ConfigDict(frozen=True, extra="ignore", title="CheckpointPolicyChanged")
    event_type = "CheckpointPolicyChanged"
    schema_version = 1

    checkpoint_id: str
    policy: CheckpointPolicyV1
    effective_from: datetime


def policy_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A policy published before residency types were named gets the default ones (residents
    and temporary residents), the rule every gate follows since: its visitors are outsiders."""
    policy = dict(data["policy"])
    policy.setdefault("resident_types", _residents_and_temporary())
    return {**data, "policy": policy}


CATALOG = Catalog(
    TOPIC,
    [
        CheckpointOpened,
        CheckpointPolicyChanged,
        CheckpointClosed,
        DutyShiftScheduled,
        DutyShiftCancelled,
        CrossingRecorded,
        QuarantineBreachAttempted,
    ],
    upcasters={
        ("CheckpointOpened", 1): policy_v1_to_v2,
        ("CheckpointPolicyChanged", 1): policy_v1_to_v2,
    },
    earlier=[CheckpointOpenedV1, CheckpointPolicyChangedV1],
)
