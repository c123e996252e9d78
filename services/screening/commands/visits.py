"""Request bodies and responses of the campaign, visit and audit API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation
from pydantic.config import JsonDict

from services.screening.domain.visits import CLIENT_ID_PATTERN
from shared.batch import ItemResultBase
from shared.contracts.screening import VisitMethod, VisitOutcome, VisitStep
from shared.horizon import CalendarDay, FactTime, example_time
from shared.scrub import FreeText

MAX_BATCH = 5000
NOTES_MAX = 200

# -- campaigns -------------------------------------------------------------------------------


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "sanxi-2020-01",
                    "node_id": "sanxi",
                    "name": "三溪镇拉网式排查",
                    "starts_on": "2020-01-27",
                    "due_on": "2020-01-31",
                    "goal": "不漏一户一人",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    node_id: str = Field(description="the place whose every household is to be screened")
    name: str = Field(min_length=1, max_length=100)
    starts_on: CalendarDay
    due_on: CalendarDay = Field(description="every household screened by this day")
    goal: FreeText | None = Field(None, max_length=500)


class Coverage(BaseModel):
    """Where the campaign stands: each household under the campaign's place counted once,
    by its best non-voided visit of this campaign (one that screens the household beats the
    latest other outcome).
    Visits without a campaign id count for the campaign from its `starts_on`."""

    households: int
    screened: int = Field(description="households a visit screened: outcome screened")
    absent: int
    refused: int
    vacant: int
    not_visited: int
    ratio: float = Field(description="screened / households (0 when there are none)")
    due_on: date
    overdue: bool = Field(description="past due_on with households not yet screened")


class CampaignOut(BaseModel):
    id: str
    node_id: str
    name: str
    starts_on: date
    due_on: date
    goal: str | None
    started_by: str | None
    version: int
    coverage: Coverage


# -- visits ----------------------------------------------------------------------------------

_VISIT_EXAMPLE: JsonDict = {
    "id": "0f7c2a9e-6d1b-4d3e-9a51-3c1f4b2e8d10",
    "household_id": "b3-u2-301",
    "campaign_id": "sanxi-2020-01",
    "method": "door",
    "outcome": "screened",
    "steps": ["greet", "qr_scanned", "notice_handed", "commitment_signed", "inquiry_recorded"],
    "commitment_signed": True,
    "notes": "户主在家,已签承诺书",
    "occurred_at": example_time(1, 10, 15),
}


class VisitFields(BaseModel):
    household_id: str = Field(min_length=1, max_length=100)
    campaign_id: str | None = Field(None, max_length=100)
    method: VisitMethod = Field(description="door, phone or a posted notice")
    outcome: VisitOutcome
    steps: list[VisitStep] = Field(
        default_factory=list,
        max_length=7,
        description="which of the seven steps were done: greet, qr_scanned, notice_handed,"
        " commitment_signed, inquiry_recorded, supervised, verified",
    )
    commitment_signed: bool = Field(
        False,
        description="承诺书 signed: only with outcome screened, which a posted notice needs",
    )
    notes: FreeText | None = Field(None, max_length=NOTES_MAX)


class VisitCreate(VisitFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_VISIT_EXAMPLE]})

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    occurred_at: FactTime | None = Field(
        None, description="when the visit happened in the field (default: now)"
    )


class VisitItem(VisitFields):
    """One visit of an offline upload: the device's own id and the time in the field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_VISIT_EXAMPLE]})

    id: str = Field(pattern=CLIENT_ID_PATTERN, description="the field app's id of the visit")
    occurred_at: FactTime = Field(
        description="when the visit happened in the field; may be days ago"
    )


class VisitBatch(BaseModel):
    """Items are checked one by one: a bad item is an `error` in the results, never a
    rejected upload."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"items": [_VISIT_EXAMPLE]}]}
    )

    # the schema shows VisitItem; each item is validated on its own so errors are per item
    items: list[SkipValidation[VisitItem]] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(ItemResultBase):
    version: int | None = None


class BatchOut(BaseModel):
    received: int
    created: int
    unchanged: int
    errors: int
    results: list[ItemResult]


class VisitOut(BaseModel):
    id: str
    household_id: str
    campaign_id: str | None
    method: VisitMethod
    outcome: VisitOutcome
    steps: list[VisitStep]
    commitment_signed: bool
    visitor: str
    notes: str | None
    occurred_at: datetime
    day: date = Field(description="the day of occurred_at in the system zone")
    recorded_at: datetime
    voided: bool
    void_reason: str | None
    audit_verdict: Literal["confirmed", "disputed"] | None = Field(
        None, description="verdict of the latest audit"
    )
    version: int


# -- audits and voiding ----------------------------------------------------------------------


class AuditCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "audit-20200130-001",
                    "visit_id": "0f7c2a9e-6d1b-4d3e-9a51-3c1f4b2e8d10",
                    "verdict": "disputed",
                    "discrepancies": "回访发现户内有武汉返乡人员未登记",
                }
            ]
        },
    )

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    visit_id: str = Field(min_length=1, max_length=100)
    verdict: Literal["confirmed", "disputed"]
    discrepancies: FreeText | None = Field(
        None, max_length=1000, description="what the re-check found; required when disputed"
    )


class AuditOut(BaseModel):
    id: str
    visit_id: str
    household_id: str
    verdict: Literal["confirmed", "disputed"]
    discrepancies: str | None
    auditor: str
    audited_at: datetime
    visit_version: int


class VoidVisit(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "核查发现未实际入户"}]}
    )

    reason: FreeText = Field(min_length=1, max_length=500)
