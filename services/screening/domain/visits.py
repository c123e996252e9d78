"""Campaigns, household visits (入户排查) and their audits (核查). Pure decide/evolve.

A campaign names a place, a period and a goal: every household under the place screened by
`due_on` ("不漏一户一人"). A visit is one contact with a household — at the door, by phone or
by a posted notice — with its outcome and which of 金堂 三溪镇's seven steps were done
(greet → QR code scanned → notice handed over → commitment letter signed → inquiry recorded →
supervised → verified). A visit screens its household when its outcome is `screened`
(`visit_screens_household`, recorded on the event for every consumer to read); a posted
notice is `screened` only with a signed commitment letter (承诺书). Each visit is its own
stream (`visit:<id>`); an unannounced audit confirms or disputes it, and a visit entered by
mistake is voided with a reason (nothing is deleted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import get_args

from shared.contracts import EventPayload
from shared.contracts.screening import (
    CampaignStarted,
    HouseholdVisited,
    VisitAudited,
    VisitMethod,
    VisitOutcome,
    VisitStep,
    VisitVoided,
    visit_screens_household,
)
from shared.errors import DomainError, Refusal

CAMPAIGN_STREAM = "campaign"
VISIT_STREAM = "visit"
# the seven steps in the order they are done
STEPS: tuple[VisitStep, ...] = get_args(VisitStep)
METHODS: tuple[VisitMethod, ...] = get_args(VisitMethod)
OUTCOMES: tuple[VisitOutcome, ...] = get_args(VisitOutcome)
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
CLIENT_ID_PATTERN = CLIENT_ID.pattern


def campaign_stream(campaign_id: str) -> str:
    return f"{CAMPAIGN_STREAM}:{campaign_id}"


def visit_stream(visit_id: str) -> str:
    return f"{VISIT_STREAM}:{visit_id}"


def is_under(path: str, ancestor: str) -> bool:
    """ltree `path <@ ancestor`: the same node or one of its descendants."""
    return path == ancestor or path.startswith(ancestor + ".")


def _check_id(value: str, field: str = "id") -> None:
    if not CLIENT_ID.match(value):
        raise DomainError(
            "invalid-id", "id must be 1-100 letters, digits, dashes or underscores", field=field
        )


# -- campaigns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    id: str
    node_id: str
    name: str
    starts_on: date
    due_on: date
    goal: str | None
    version: int


@dataclass(frozen=True)
class StartCampaign:
    campaign_id: str
    node_id: str
    name: str
    starts_on: date
    due_on: date
    goal: str | None
    node_known: bool


def decide_start_campaign(state: Campaign | None, cmd: StartCampaign) -> list[EventPayload]:
    name = cmd.name.strip()
    goal = cmd.goal.strip() if cmd.goal and cmd.goal.strip() else None
    if state is not None:
        same = (state.node_id, state.name, state.starts_on, state.due_on, state.goal) == (
            cmd.node_id,
            name,
            cmd.starts_on,
            cmd.due_on,
            goal,
        )
        if same:
            return []
        raise DomainError(
            "campaign-exists",
            f"campaign {cmd.campaign_id} already exists with other details",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    _check_id(cmd.campaign_id)
    if not cmd.node_known:
        raise DomainError("unknown-node", f"place {cmd.node_id} does not exist", field="node_id")
    if not name:
        raise DomainError("name-empty", "a campaign needs a name", field="name")
    if cmd.due_on < cmd.starts_on:
        raise DomainError(
            "due-before-start",
            f"due_on {cmd.due_on} is before starts_on {cmd.starts_on}",
            field="due_on",
        )
    return [
        CampaignStarted(
            campaign_id=cmd.campaign_id,
            node_id=cmd.node_id,
            name=name,
            starts_on=cmd.starts_on,
            due_on=cmd.due_on,
            goal=goal,
        )
    ]


def evolve_campaign(state: Campaign | None, event: EventPayload, version: int) -> Campaign | None:
    if isinstance(event, CampaignStarted):
        return Campaign(
            event.campaign_id,
            event.node_id,
            event.name,
            event.starts_on,
            event.due_on,
            event.goal,
            version,
        )
    return replace(state, version=version) if state is not None else None


# -- visits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    id: str
    household_id: str
    visitor: str
    recorded: HouseholdVisited
    voided: bool
    audits: tuple[VisitAudited, ...]
    version: int


@dataclass(frozen=True)
class RecordVisit:
    """A visit as the field app reports it; `occurred_at` is when it happened in the field."""

    visit_id: str
    household_id: str
    campaign_id: str | None
    method: str
    outcome: str
    steps: tuple[str, ...]
    commitment_signed: bool
    visitor: str
    notes: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class CampaignRef:
    id: str
    node_path: str


@dataclass(frozen=True)
class VisitFacts:
    """What the handler looked up for a visit: the household's place path (None: no such
    household), the campaign named (None: none named or no such campaign), and when an
    earlier visit with the same id happened (None: the id is new)."""

    household_path: str | None
    campaign: CampaignRef | None
    existing_at: datetime | None
    now: datetime
    clock_skew: timedelta


def normalise_steps(steps: tuple[str, ...], commitment_signed: bool) -> list[VisitStep]:
    """Known steps only, each once, in the order of the method; signing the commitment
    letter is itself a step."""
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise DomainError(
            "unknown-step",
            f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}",
            field="steps",
        )
    if "commitment_signed" in steps and not commitment_signed:
        raise DomainError(
            "commitment-not-signed",
            "the step commitment_signed was recorded but commitment_signed is false",
            field="commitment_signed",
        )
    done = set(steps) | ({"commitment_signed"} if commitment_signed else set())
    return [s for s in STEPS if s in done]


def _visited(cmd: RecordVisit, facts: VisitFacts) -> HouseholdVisited:
    """The event a valid visit records; raises for an invalid one."""
    _check_id(cmd.visit_id)
    if cmd.occurred_at > facts.now + facts.clock_skew:
        raise DomainError(
            "visit-in-future",
            f"occurred_at {cmd.occurred_at.isoformat()} is in the future",
            field="occurred_at",
        )
    if cmd.method not in METHODS:
        raise DomainError("unknown-method", f"method must be one of {METHODS}", field="method")
    if cmd.outcome not in OUTCOMES:
        raise DomainError("unknown-outcome", f"outcome must be one of {OUTCOMES}", field="outcome")
    steps = normalise_steps(cmd.steps, cmd.commitment_signed)
    if cmd.commitment_signed and cmd.outcome != "screened":
        raise DomainError(
            "signed-not-screened",
            f"a signed commitment letter means the household was screened, not {cmd.outcome}",
            field="outcome",
        )
    if cmd.method == "notice" and cmd.outcome == "screened" and not cmd.commitment_signed:
        raise DomainError(
            "notice-not-screened",
            "a posted notice screens a household only with a signed commitment letter",
            field="outcome",
        )
    if facts.household_path is None:
        raise DomainError(
            "unknown-household",
            f"household {cmd.household_id} does not exist",
            field="household_id",
        )
    if cmd.campaign_id is not None:
        if facts.campaign is None:
            raise DomainError(
                "unknown-campaign",
                f"campaign {cmd.campaign_id} does not exist",
                field="campaign_id",
            )
        if not is_under(facts.household_path, facts.campaign.node_path):
            raise DomainError(
                "household-outside-campaign",
                f"household {cmd.household_id} is not in the place of campaign {cmd.campaign_id}",
                field="campaign_id",
            )
    notes = cmd.notes.strip() if cmd.notes and cmd.notes.strip() else None
    return HouseholdVisited(
        visit_id=cmd.visit_id,
        household_id=cmd.household_id,
        campaign_id=cmd.campaign_id,
        method=cmd.method,
        outcome=cmd.outcome,
        steps=steps,
        commitment_signed=cmd.commitment_signed,
        screens_household=visit_screens_household(cmd.outcome),
        visitor=cmd.visitor,
        notes=notes,
    )


def decide_record_visit(
    state: Visit | None, cmd: RecordVisit, facts: VisitFacts
) -> list[EventPayload]:
    """Record a visit; the same visit uploaded again (same id, same content, same time) is
    no change, the same id with other content a conflict."""
    event = _visited(cmd, facts)
    if state is None:
        return [event]
    if state.recorded == event and facts.existing_at == cmd.occurred_at:
        return []
    raise DomainError(
        "visit-exists",
        f"visit {cmd.visit_id} was already recorded with other content",
        refusal=Refusal.CONFLICT,
        field="id",
    )


@dataclass(frozen=True)
class AuditVisit:
    audit_id: str
    visit_id: str
    verdict: str
    discrepancies: str | None
    auditor: str


def decide_audit(
    state: Visit | None, cmd: AuditVisit, audit_of_other_visit: str | None = None
) -> list[EventPayload]:
    """An unannounced re-check. `audit_of_other_visit`: the visit that already holds this
    audit id, if it is another one."""
    if state is None:
        raise DomainError("unknown-visit", f"visit {cmd.visit_id} does not exist", field="visit_id")
    discrepancies = (
        cmd.discrepancies.strip() if cmd.discrepancies and cmd.discrepancies.strip() else None
    )
    for earlier in state.audits:
        if earlier.audit_id == cmd.audit_id:
            if (earlier.verdict, earlier.discrepancies, earlier.auditor) == (
                cmd.verdict,
                discrepancies,
                cmd.auditor,
            ):
                return []
            raise DomainError(
                "audit-exists",
                f"audit {cmd.audit_id} was already recorded with other content",
                refusal=Refusal.CONFLICT,
                field="id",
            )
    if audit_of_other_visit is not None:
        raise DomainError(
            "audit-exists",
            f"audit {cmd.audit_id} belongs to visit {audit_of_other_visit}",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    _check_id(cmd.audit_id)
    if state.voided:
        raise DomainError(
            "visit-voided",
            f"visit {state.id} was voided; there is nothing to audit",
            refusal=Refusal.CONFLICT,
            field="visit_id",
        )
    if cmd.auditor == state.visitor:
        raise DomainError(
            "self-audit",
            "a visit is audited by someone other than its visitor",
            refusal=Refusal.CONFLICT,
            field="visit_id",
        )
    if cmd.verdict not in ("confirmed", "disputed"):
        raise DomainError(
            "unknown-verdict", "verdict must be confirmed or disputed", field="verdict"
        )
    if cmd.verdict == "disputed" and discrepancies is None:
        raise DomainError(
            "discrepancies-missing",
            "a disputed visit needs the discrepancies found",
            field="discrepancies",
        )
    return [
        VisitAudited(
            audit_id=cmd.audit_id,
            visit_id=state.id,
            household_id=state.household_id,
            verdict=cmd.verdict,
            discrepancies=discrepancies,
            auditor=cmd.auditor,
        )
    ]


def decide_void(state: Visit | None, reason: str) -> list[EventPayload]:
    if state is None:
        raise DomainError("unknown-visit", "visit does not exist", refusal=Refusal.NOT_FOUND)
    if state.voided:
        return []
    if not reason.strip():
        raise DomainError("reason-empty", "voiding a visit needs a reason", field="reason")
    return [VisitVoided(visit_id=state.id, household_id=state.household_id, reason=reason.strip())]


def evolve_visit(state: Visit | None, event: EventPayload, version: int) -> Visit | None:
    if isinstance(event, HouseholdVisited):
        return Visit(event.visit_id, event.household_id, event.visitor, event, False, (), version)
    if state is None:
        return None
    if isinstance(event, VisitAudited):
        return replace(state, audits=(*state.audits, event), version=version)
    if isinstance(event, VisitVoided):
        return replace(state, voided=True, version=version)
    return replace(state, version=version)
