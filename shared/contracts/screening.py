"""Events published by screening on `screening.events`: campaigns and household visits,
inquiries and key persons, watch and quarantine, follow-ups and care tasks, tests and
vaccination, risk areas, daily reports.

A *subject* is who a record is about: a registered person (`subject_id` = the registry's
person id) or, for someone referred from a gate who is not registered yet, `h:<id_hmac>`
with masked values only. Clear PII never appears here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Catalog, EventPayload
from shared.scrub import FreeText

TOPIC = "screening.events"

VisitMethod = Literal["door", "phone", "notice"]
VisitOutcome = Literal["screened", "absent", "refused", "vacant"]
VisitStep = Literal[
    "greet",
    "qr_scanned",
    "notice_handed",
    "commitment_signed",
    "inquiry_recorded",
    "supervised",
    "verified",
]
KeyReason = Literal[
    "returnee_risk_area",
    "close_contact",
    "fever",
    "symptoms",
    "positive_test",
    "checkpoint_referral",
    "unresolved_travel",
    "other",
]
# as first published, before `unresolved_travel`: the reasons of KeyPersonFlagged v1
KeyReasonV1 = Literal[
    "returnee_risk_area",
    "close_contact",
    "fever",
    "symptoms",
    "positive_test",
    "checkpoint_referral",
    "other",
]
QuarantineType = Literal["home", "home_medical", "centralized"]
TaskKind = Literal[
    "call",
    "supplies",
    "garbage",
    "disinfection",
    "shopping",
    "counselling",
    "other",
]

# -- risk areas (owned here, used by checkpoint too) ------------------------------------------


class RiskAreaDeclared(EventPayload):
    """A place people coming from are screened for (中高风险地区)."""

    event_type = "RiskAreaDeclared"

    area_id: str
    name: str = Field(examples=["湖北省武汉市"])
    level: Literal["high", "medium", "low"] = "high"
    region_codes: list[str] = Field(
        default_factory=list, description="administrative division code prefixes (e.g. 4201)"
    )
    valid_from: date
    valid_to: date | None = None


class RiskAreaLifted(EventPayload):
    event_type = "RiskAreaLifted"

    area_id: str
    lifted_on: date
    reason: str


# -- campaigns, visits, audits (入户排查) -----------------------------------------------------


class CampaignStarted(EventPayload):
    event_type = "CampaignStarted"

    campaign_id: str
    node_id: str
    name: str
    starts_on: date
    due_on: date = Field(description="every household screened by this day")
    goal: str | None = None


def visit_screens_household(outcome: str) -> bool:
    """The one rule for a screened household (已排查): a visit screens its household when its
    outcome is `screened`. (A posted notice is `screened` only with a signed commitment letter,
    and a signed letter only with outcome `screened`: screening refuses any other visit.)
    Screening decides it when it records a visit, and version 1 of `HouseholdVisited` is read
    by it, so every consumer reads `screens_household` and none keeps a rule of its own."""
    return outcome == "screened"


class HouseholdVisited(EventPayload):
    """A household was visited, called or noticed; `screens_household` says whether the visit
    counts the household as screened (coverage, figures and ledgers count it, nothing else)."""

    event_type = "HouseholdVisited"
    schema_version = 2

    visit_id: str
    household_id: str
    campaign_id: str | None = None
    method: VisitMethod
    outcome: VisitOutcome
    steps: list[VisitStep] = Field(default_factory=list)
    commitment_signed: bool = Field(False, description="承诺书 signed")
    screens_household: bool = Field(
        description="the visit counts its household as screened: outcome screened"
    )
    visitor: str = Field(description="token sub of the worker")
    notes: str | None = None


class HouseholdVisitedV1(EventPayload):
    """As first published, kept for the contract files and the upcaster; never produced: each
    consumer decided from `outcome` and `commitment_signed` itself, and not all alike."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="HouseholdVisited")
    event_type = "HouseholdVisited"
    schema_version = 1

    visit_id: str
    household_id: str
    campaign_id: str | None = None
    method: VisitMethod
    outcome: VisitOutcome
    steps: list[VisitStep] = Field(default_factory=list)
    commitment_signed: bool = False
    visitor: str
    notes: str | None = None


def household_visited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Whether a recorded visit screened its household, by the one rule."""
    return {**data, "screens_household": visit_screens_household(data["outcome"])}


class VisitAudited(EventPayload):
    """An unannounced re-check of an earlier visit (核查)."""

    event_type = "VisitAudited"

    audit_id: str
    visit_id: str
    household_id: str
    verdict: Literal["confirmed", "disputed"]
    discrepancies: str | None = None
    auditor: str


class VisitVoided(EventPayload):
    event_type = "VisitVoided"

    visit_id: str
    household_id: str
    reason: str


# -- inquiries and key persons (重点人员) -----------------------------------------------------


class TravelStop(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    place: FreeText = Field(examples=["湖北省武汉市"])
    region_code: str | None = Field(None, examples=["420100"])
    arrived_on: date | None = None
    left_on: date | None = None


class PersonInquired(EventPayload):
    """Questions asked of a person: travel, contact with cases, symptoms, temperature."""

    event_type = "PersonInquired"

    inquiry_id: str
    subject_id: str
    household_id: str | None = None
    travel: list[TravelStop] = Field(default_factory=list)
    close_contact: bool = False
    symptoms: list[str] = Field(default_factory=list)
    temperature: float | None = None
    inquirer: str


class KeyPersonFlagged(EventPayload):
    """Someone became (or stays) a key person for these reasons; repeated flags add reasons.
    `unresolved_travel`: a travel stop or a gate's origin could not be placed in one
    administrative division, so whether it lay in a risk area needs review."""

    event_type = "KeyPersonFlagged"
    schema_version = 2

    subject_id: str
    node_id: str | None = Field(None, description="the household or place the person is at")
    reasons: list[KeyReason]
    source: Literal["inquiry", "checkpoint", "temperature", "test", "manual"]
    source_id: str | None = None
    id_hmac: str | None = None
    document_masked: str | None = None
    name_masked: str | None = None


class KeyPersonFlaggedV1(EventPayload):
    """Someone became (or stays) a key person for these reasons; repeated flags add reasons."""

    # As first published, kept for the contract files and the upcaster; never produced.
    model_config = ConfigDict(frozen=True, extra="ignore", title="KeyPersonFlagged")
    event_type = "KeyPersonFlagged"
    schema_version = 1

    subject_id: str
    node_id: str | None = Field(None, description="the household or place the person is at")
    reasons: list[KeyReasonV1]
    source: Literal["inquiry", "checkpoint", "temperature", "test", "manual"]
    source_id: str | None = None
    id_hmac: str | None = None
    document_masked: str | None = None
    name_masked: str | None = None


def key_person_flagged_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v2 only adds a reason: every v1 payload is a v2 payload."""
    return data


class KeyPersonCleared(EventPayload):
    event_type = "KeyPersonCleared"

    subject_id: str
    reason: str


class KeyPersonRulesChanged(EventPayload):
    """The rules that flag key persons changed at runtime (audited, replayable)."""

    event_type = "KeyPersonRulesChanged"

    fever_threshold: float = Field(
        description="°C; a reading at or above it is a fever", examples=[37.3]
    )
    look_back_days: int = Field(
        ge=1, description="a stay in a risk area counts this many days back", examples=[14]
    )


# -- watch and quarantine (居家观察 / 隔离) ----------------------------------------------------


class ObservationStarted(EventPayload):
    event_type = "ObservationStarted"

    subject_id: str
    node_id: str | None = None
    starts_at: datetime
    planned_end: date | None = None
    carer_party_id: str | None = None


class QuarantineOrdered(EventPayload):
    event_type = "QuarantineOrdered"

    quarantine_id: str
    subject_id: str
    node_id: str | None = None
    type: QuarantineType
    place: str | None = Field(None, description="address or site of quarantine")
    starts_at: datetime
    planned_end: date
    carer_party_id: str | None = None


class QuarantineExtended(EventPayload):
    event_type = "QuarantineExtended"

    quarantine_id: str
    subject_id: str
    planned_end: date
    previous_end: date
    reason: str


class QuarantineReleased(EventPayload):
    event_type = "QuarantineReleased"

    quarantine_id: str | None = Field(None, description="None: released from observation")
    subject_id: str
    released_at: datetime
    reason: str


class QuarantineTransferred(EventPayload):
    event_type = "QuarantineTransferred"

    quarantine_id: str | None = None
    subject_id: str
    to: Literal["hospital", "centralized"]
    destination: str
    transferred_at: datetime


# -- follow-ups and care tasks (每日两次体温, 五个每日) -----------------------------------------


class TemperatureRecorded(EventPayload):
    event_type = "TemperatureRecorded"

    reading_id: str
    subject_id: str
    celsius: float
    slot_day: date
    slot: str = Field(examples=["08:00-10:00"])
    late: bool = False
    recorded_by: str


class FollowUpMissed(EventPayload):
    """A slot closed with no reading; detected by the service itself."""

    event_type = "FollowUpMissed"

    subject_id: str
    slot_day: date
    slot: str


class CareTaskCompleted(EventPayload):
    event_type = "CareTaskCompleted"

    task_id: str
    target_id: str = Field(description="subject id, or node id of a public place")
    task: TaskKind
    slot_day: date
    slot: str
    done_by: str
    notes: str | None = None
    late: bool = False


class CareTaskMissed(EventPayload):
    event_type = "CareTaskMissed"

    target_id: str
    task: TaskKind
    slot_day: date
    slot: str
    party_id: str | None = Field(
        None, description="who answers for the task: the quarantine's carer or the place plan's"
    )


class PlaceCarePlanned(EventPayload):
    """A public place's daily care plan (楼道, 电梯间, 垃圾分类点, 农贸市场 消毒): the task is due
    in each of `slots` every day from `effective_from`; no slots ends the plan."""

    event_type = "PlaceCarePlanned"

    node_id: str
    task: TaskKind
    times_per_day: int = Field(ge=0, examples=[3])
    slots: list[str] = Field(examples=[["07:00-11:40", "11:40-16:20", "16:20-21:00"]])
    party_id: str | None = None
    effective_from: datetime


# -- tests and vaccination (核酸, 疫苗) ---------------------------------------------------------


class TestRoundStarted(EventPayload):
    """A numbered round of mass testing (应检尽检) over a place."""

    event_type = "TestRoundStarted"

    round_id: str
    node_id: str
    number: int = Field(ge=1)
    starts_on: date
    ends_on: date


class SampleCollected(EventPayload):
    event_type = "SampleCollected"

    sample_id: str
    subject_id: str
    round_id: str | None = None
    collected_by: str


class TestResulted(EventPayload):
    event_type = "TestResulted"

    sample_id: str
    subject_id: str
    result: Literal["negative", "positive", "invalid"]


class VaccineDoseGiven(EventPayload):
    event_type = "VaccineDoseGiven"

    dose_id: str
    subject_id: str
    dose_number: int = Field(ge=1, le=5)
    vaccine: str
    given_by: str


# -- daily reports (日报告, 零报告) -------------------------------------------------------------


class DailyReportSubmitted(EventPayload):
    """A node's report for a day; `zero` is an explicit nothing-happened (零报告). A later
    submission for the same node and day amends it (higher `revision`)."""

    event_type = "DailyReportSubmitted"

    report_id: str
    node_id: str
    day: date
    revision: int = Field(ge=1)
    zero: bool
    figures: dict[str, int] = Field(default_factory=dict)
    late: bool
    submitted_by: str


CATALOG = Catalog(
    TOPIC,
    [
        RiskAreaDeclared,
        RiskAreaLifted,
        CampaignStarted,
        HouseholdVisited,
        VisitAudited,
        VisitVoided,
        PersonInquired,
        KeyPersonFlagged,
        KeyPersonCleared,
        ObservationStarted,
        QuarantineOrdered,
        QuarantineExtended,
        QuarantineReleased,
        QuarantineTransferred,
        TemperatureRecorded,
        FollowUpMissed,
        CareTaskCompleted,
        CareTaskMissed,
        TestRoundStarted,
        SampleCollected,
        TestResulted,
        VaccineDoseGiven,
        DailyReportSubmitted,
        KeyPersonRulesChanged,
        PlaceCarePlanned,
    ],
    upcasters={
        ("HouseholdVisited", 1): household_visited_v1_to_v2,
        ("KeyPersonFlagged", 1): key_person_flagged_v1_to_v2,
    },
    earlier=[HouseholdVisitedV1, KeyPersonFlaggedV1],
)
