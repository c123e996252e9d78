"""Campaigns, household visits and audits, as given / when / then."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.screening.domain.visits import (
    AuditVisit,
    Campaign,
    CampaignRef,
    RecordVisit,
    StartCampaign,
    Visit,
    VisitFacts,
    decide_audit,
    decide_record_visit,
    decide_start_campaign,
    decide_void,
    evolve_campaign,
    evolve_visit,
    is_under,
)
from shared.contracts import EventPayload
from shared.contracts.screening import (
    CampaignStarted,
    HouseholdVisited,
    VisitAudited,
    VisitVoided,
)
from shared.errors import DomainError, Refusal

NOW = datetime(2020, 1, 28, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
SANXI = CampaignRef("sanxi-2020", "jintang.sanxi")
FACTS = VisitFacts("jintang.sanxi.c1.b3.h301", SANXI, None, NOW, SKEW)


def visit(**changes: object) -> RecordVisit:
    base = RecordVisit(
        visit_id="v1",
        household_id="h301",
        campaign_id="sanxi-2020",
        method="door",
        outcome="screened",
        steps=("greet", "qr_scanned", "notice_handed", "inquiry_recorded"),
        commitment_signed=True,
        visitor="worker-1",
        notes="已签承诺书",
        occurred_at=NOW - timedelta(days=2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def fold_visit(events: list[EventPayload]) -> Visit | None:
    state: Visit | None = None
    for version, e in enumerate(events, start=1):
        state = evolve_visit(state, e, version)
    return state


# -- campaigns -------------------------------------------------------------------------------


def start(**changes: object) -> StartCampaign:
    base = StartCampaign(
        "sanxi-2020", "sanxi", "三溪镇拉网式排查", date(2020, 1, 27), date(2020, 1, 31), None, True
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_campaign_starts_over_a_known_place() -> None:
    assert decide_start_campaign(None, start()) == [
        CampaignStarted(
            campaign_id="sanxi-2020",
            node_id="sanxi",
            name="三溪镇拉网式排查",
            starts_on=date(2020, 1, 27),
            due_on=date(2020, 1, 31),
        )
    ]


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (start(node_known=False), "node_id"),
        (start(due_on=date(2020, 1, 26)), "due_on"),
        (start(name="  "), "name"),
        (start(campaign_id="bad id"), "id"),
    ],
)
def test_invalid_campaigns_are_refused_naming_the_field(cmd: StartCampaign, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_start_campaign(None, cmd)
    assert info.value.field == field and info.value.refusal is Refusal.INVALID


def test_starting_the_same_campaign_again_changes_nothing_but_other_details_conflict() -> None:
    [event] = decide_start_campaign(None, start())
    state = evolve_campaign(None, event, 1)
    assert state == Campaign(
        "sanxi-2020", "sanxi", "三溪镇拉网式排查", date(2020, 1, 27), date(2020, 1, 31), None, 1
    )
    assert decide_start_campaign(state, start()) == []
    with pytest.raises(DomainError) as info:
        decide_start_campaign(state, start(due_on=date(2020, 2, 5)))
    assert info.value.refusal is Refusal.CONFLICT


# -- visits ----------------------------------------------------------------------------------


def test_a_signed_commitment_is_a_screened_visit_and_the_step_is_recorded_in_order() -> None:
    [event] = decide_record_visit(None, visit(steps=("inquiry_recorded", "greet")), FACTS)
    assert event == HouseholdVisited(
        visit_id="v1",
        household_id="h301",
        campaign_id="sanxi-2020",
        method="door",
        outcome="screened",
        steps=["greet", "commitment_signed", "inquiry_recorded"],
        commitment_signed=True,
        screens_household=True,
        visitor="worker-1",
        notes="已签承诺书",
    )


@pytest.mark.parametrize(
    ("given", "screens"),
    [
        (visit(), True),  # at the door, letter signed
        (visit(commitment_signed=False, steps=("greet",)), True),  # at the door, no letter
        (visit(method="phone", commitment_signed=False, steps=()), True),
        (visit(method="notice"), True),  # a posted notice with a signed letter
        (visit(outcome="absent", commitment_signed=False, steps=()), False),
        (visit(outcome="refused", commitment_signed=False, steps=()), False),
        (visit(method="notice", outcome="vacant", commitment_signed=False, steps=()), False),
    ],
)
def test_a_visit_screens_its_household_when_its_outcome_is_screened(
    given: RecordVisit, screens: bool
) -> None:
    """The one rule, decided here and carried by the event for every consumer to read."""
    [event] = decide_record_visit(None, given, FACTS)
    assert isinstance(event, HouseholdVisited) and event.screens_household is screens


@pytest.mark.parametrize(
    ("given", "facts", "code", "field"),
    [
        # signing the commitment letter means the household was screened
        (visit(outcome="absent"), FACTS, "signed-not-screened", "outcome"),
        # a posted notice alone screens nobody
        (
            visit(method="notice", commitment_signed=False, steps=()),
            FACTS,
            "notice-not-screened",
            "outcome",
        ),
        (visit(steps=("greet", "dance")), FACTS, "unknown-step", "steps"),
        (
            visit(steps=("commitment_signed",), commitment_signed=False, outcome="absent"),
            FACTS,
            "commitment-not-signed",
            "commitment_signed",
        ),
        (visit(method="fax"), FACTS, "unknown-method", "method"),
        (visit(outcome="gone"), FACTS, "unknown-outcome", "outcome"),
        (visit(), replace(FACTS, household_path=None), "unknown-household", "household_id"),
        (visit(), replace(FACTS, campaign=None), "unknown-campaign", "campaign_id"),
        (
            visit(),
            replace(FACTS, household_path="jintang.huaikou.h9"),
            "household-outside-campaign",
            "campaign_id",
        ),
        (visit(occurred_at=NOW + timedelta(hours=1)), FACTS, "visit-in-future", "occurred_at"),
        (visit(visit_id="has space"), FACTS, "invalid-id", "id"),
    ],
)
def test_visits_breaking_a_rule_are_refused_naming_the_field(
    given: RecordVisit, facts: VisitFacts, code: str, field: str
) -> None:
    with pytest.raises(DomainError) as info:
        decide_record_visit(None, given, facts)
    assert (info.value.code, info.value.field, info.value.refusal) == (
        code,
        field,
        Refusal.INVALID,
    )


@pytest.mark.parametrize(
    "given",
    [
        visit(method="notice"),  # a notice with a signed letter screens
        visit(method="phone", commitment_signed=False, steps=("inquiry_recorded",)),
        visit(outcome="absent", commitment_signed=False, steps=("notice_handed",)),
        visit(method="notice", outcome="vacant", commitment_signed=False, steps=()),
        visit(campaign_id=None),
        visit(occurred_at=NOW + timedelta(minutes=4)),  # within the clock skew
        visit(occurred_at=NOW - timedelta(days=9)),  # an offline upload days later
    ],
)
def test_valid_visits_are_recorded(given: RecordVisit) -> None:
    [event] = decide_record_visit(None, given, FACTS)
    assert isinstance(event, HouseholdVisited) and event.visit_id == "v1"


def test_the_same_visit_uploaded_again_changes_nothing() -> None:
    cmd = visit()
    state = fold_visit(decide_record_visit(None, cmd, FACTS))
    again = replace(FACTS, existing_at=cmd.occurred_at)
    assert decide_record_visit(state, cmd, again) == []


@pytest.mark.parametrize(
    "other",
    [
        visit(outcome="refused", commitment_signed=False, steps=()),
        visit(household_id="h302"),
        visit(visitor="worker-2"),
        visit(occurred_at=NOW - timedelta(days=1)),
    ],
)
def test_the_same_visit_id_with_other_content_is_a_conflict(other: RecordVisit) -> None:
    first = visit()
    state = fold_visit(decide_record_visit(None, first, FACTS))
    with pytest.raises(DomainError) as info:
        decide_record_visit(state, other, replace(FACTS, existing_at=first.occurred_at))
    assert info.value.refusal is Refusal.CONFLICT and info.value.field == "id"


def test_paths_are_under_themselves_and_their_ancestors_only() -> None:
    assert is_under("a.b.c", "a.b") and is_under("a.b", "a.b")
    assert not is_under("a.bc", "a.b") and not is_under("a", "a.b")


# -- audits and voiding ----------------------------------------------------------------------

VISITED = fold_visit(decide_record_visit(None, visit(), FACTS))


def audit(**changes: object) -> AuditVisit:
    base = AuditVisit("a1", "v1", "confirmed", None, "auditor-1")
    return replace(base, **changes)  # type: ignore[arg-type]


def test_an_audit_confirms_a_visit_and_the_same_audit_again_changes_nothing() -> None:
    events = decide_audit(VISITED, audit())
    assert events == [
        VisitAudited(
            audit_id="a1",
            visit_id="v1",
            household_id="h301",
            verdict="confirmed",
            auditor="auditor-1",
        )
    ]
    audited = evolve_visit(VISITED, events[0], 2)
    assert audited is not None and audited.version == 2
    assert decide_audit(audited, audit()) == []
    with pytest.raises(DomainError) as info:
        decide_audit(audited, audit(verdict="disputed", discrepancies="未入户"))
    assert info.value.refusal is Refusal.CONFLICT


VOIDED = evolve_visit(VISITED, VisitVoided(visit_id="v1", household_id="h301", reason="x"), 2)


@pytest.mark.parametrize(
    ("state", "cmd", "other", "code", "refusal"),
    [
        (VOIDED, audit(), None, "visit-voided", Refusal.CONFLICT),
        (VISITED, audit(auditor="worker-1"), None, "self-audit", Refusal.CONFLICT),
        (VISITED, audit(verdict="disputed"), None, "discrepancies-missing", Refusal.INVALID),
        (VISITED, audit(), "v9", "audit-exists", Refusal.CONFLICT),
        (None, audit(), None, "unknown-visit", Refusal.INVALID),
    ],
)
def test_audits_breaking_a_rule_are_refused(
    state: Visit | None, cmd: AuditVisit, other: str | None, code: str, refusal: Refusal
) -> None:
    with pytest.raises(DomainError) as info:
        decide_audit(state, cmd, other)
    assert (info.value.code, info.value.refusal) == (code, refusal)


def test_a_disputed_audit_names_its_discrepancies() -> None:
    [event] = decide_audit(VISITED, audit(verdict="disputed", discrepancies=" 户内有返乡人员 "))
    assert isinstance(event, VisitAudited) and event.discrepancies == "户内有返乡人员"


def test_voiding_records_the_reason_once() -> None:
    assert decide_void(VISITED, "核查发现未实际入户") == [
        VisitVoided(visit_id="v1", household_id="h301", reason="核查发现未实际入户")
    ]
    assert VOIDED is not None and VOIDED.voided
    assert decide_void(VOIDED, "again") == []


@pytest.mark.parametrize(
    ("state", "reason", "refusal"),
    [(None, "x", Refusal.NOT_FOUND), (VISITED, "  ", Refusal.INVALID)],
)
def test_voiding_needs_a_visit_and_a_reason(
    state: Visit | None, reason: str, refusal: Refusal
) -> None:
    with pytest.raises(DomainError) as info:
        decide_void(state, reason)
    assert info.value.refusal is refusal
