"""Events published by checkpoint on `checkpoint.events`: gates, policies, duty shifts, the
crossing ledger with the server's decisions, quarantine breaches.

A person crossing is known by `id_hmac` and a masked document number only; the clear number
typed or scanned at the gate is never stored or published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Catalog, EventPayload

TOPIC = "checkpoint.events"

CheckpointLevel = Literal["county", "township", "village", "natural_village", "compound"]
HealthCode = Literal["green", "yellow", "red"]
Decision = Literal["admit", "deny", "persuade_return", "refer"]
DutyRole = Literal["police", "community_cadre", "property_guard", "health_worker", "volunteer"]


def _green_only() -> list[HealthCode]:
    return ["green"]


class CheckpointPolicy(BaseModel):
    """How a gate judges a crossing (一检二测三登记; 逢人必检、逢车必查)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    residents_only: bool = Field(
        False,
        description="closed management: only residents of the "
        "guarded node (and their vehicles) may enter",
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

    checkpoint_id: str
    node_id: str = Field(description="the place the gate guards")
    name: str = Field(examples=["关王庙乡东卡口"])
    level: CheckpointLevel
    policy: CheckpointPolicy


class CheckpointPolicyChanged(EventPayload):
    """From `effective_from` on, crossings are judged by this policy."""

    event_type = "CheckpointPolicyChanged"

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
    reasons: list[str] = Field(description="machine-readable, e.g. not_resident, fever")
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
)
