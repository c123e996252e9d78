"""How a gate decides (逢人必检、逢车必查): the reasons a crossing raises and what they lead to.

Which reasons a crossing raises:

| reason                   | when                                                              |
|--------------------------|-------------------------------------------------------------------|
| `under_quarantine`       | going out, someone in it is under quarantine now (a breach)       |
| `under_observation`      | going out, someone in it is under home observation now            |
| `fever`                  | temperature at or above the policy's threshold (either direction) |
| `risk_area_origin`       | coming in from a risk area active on the crossing's day           |
| `unresolved_origin`      | coming in from an origin that names no one division (鼓楼区, a    |
|                          | typo), on a day some risk area is active                          |
| `health_code_<colour>`   | either direction, a colour the policy does not pass               |
| `health_code_missing`    | either direction, no health code was shown                        |
| `test_report_missing`    | coming in, a report is required and none was shown                |
| `test_report_expired`    | coming in, the report is older than the policy allows             |
| `not_resident`           | coming in at a residents-only gate, someone is not registered in  |
|                          | a household under the guarded node                                |
| `residency_<type>`       | coming in at a residents-only gate, someone is registered there   |
|                          | only as a residency type the policy does not count as a resident  |
|                          | (by default `visitor`: 访客 are outsiders under 封闭管理)          |
| `vehicle_not_registered` | coming in at a residents-only gate, the plate is not registered   |
|                          | to a household under the guarded node                             |

The decision is the first rule that applies (precedence):

1. `under_quarantine` / `under_observation` → **deny**: a person who must stay in does not go
   out, whatever else is true (a quarantined one is also a `QuarantineBreachAttempted`).
2. `fever` → **refer**: a person with fever is handed to the health worker, never just sent
   away (turned away, they would be lost to follow-up).
3. `risk_area_origin` with the policy's `risk_area_arrivals = refer` → **refer**, for the
   same reason: a referral makes the arrival a key person in screening.
4. any health-code, test-report or residency reason → **deny**.
5. `unresolved_origin` → **refer**: whether the arrival comes from a risk area is not known,
   so the health worker asks again, and the referral flags them for review in screening
   (`unresolved_travel`); never admitted as if from nowhere risky, nor turned back for a
   place the gate could not read.
6. `risk_area_origin` with `risk_area_arrivals = persuade_return` → **persuade_return** (劝返).
7. otherwise → **admit**.

Every reason found is reported, in the order of the table, whatever the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from shared.contracts.checkpoint import CheckpointPolicy, Decision, HealthCode
from shared.contracts.registry import Residency

UNDER_QUARANTINE: Final = "under_quarantine"
UNDER_OBSERVATION: Final = "under_observation"
FEVER: Final = "fever"
RISK_AREA_ORIGIN: Final = "risk_area_origin"
UNRESOLVED_ORIGIN: Final = "unresolved_origin"
HEALTH_CODE_MISSING: Final = "health_code_missing"
TEST_REPORT_MISSING: Final = "test_report_missing"
TEST_REPORT_EXPIRED: Final = "test_report_expired"
NOT_RESIDENT: Final = "not_resident"
RESIDENCY_RESIDENT: Final = "residency_resident"
RESIDENCY_TEMPORARY: Final = "residency_temporary"
RESIDENCY_VISITOR: Final = "residency_visitor"
VEHICLE_NOT_REGISTERED: Final = "vehicle_not_registered"

STAY_IN: Final = frozenset({UNDER_QUARANTINE, UNDER_OBSERVATION})
DENYING: Final = frozenset(
    {
        HEALTH_CODE_MISSING,
        "health_code_green",
        "health_code_yellow",
        "health_code_red",
        TEST_REPORT_MISSING,
        TEST_REPORT_EXPIRED,
        NOT_RESIDENT,
        RESIDENCY_RESIDENT,
        RESIDENCY_TEMPORARY,
        RESIDENCY_VISITOR,
        VEHICLE_NOT_REGISTERED,
    }
)
REASON_ORDER: Final = (
    UNDER_QUARANTINE,
    UNDER_OBSERVATION,
    FEVER,
    RISK_AREA_ORIGIN,
    UNRESOLVED_ORIGIN,
    "health_code_red",
    "health_code_yellow",
    "health_code_green",
    HEALTH_CODE_MISSING,
    TEST_REPORT_MISSING,
    TEST_REPORT_EXPIRED,
    NOT_RESIDENT,
    RESIDENCY_RESIDENT,
    RESIDENCY_TEMPORARY,
    RESIDENCY_VISITOR,
    VEHICLE_NOT_REGISTERED,
)


# Built per crossing: slotted, not frozen (a frozen dataclass costs ~5x as much to build).


@dataclass(slots=True)
class Traveller:
    """A person at the gate as the local views know them, at the crossing's time."""

    subject_id: str  # the registry person id when recognised, else h:<id_hmac>
    # the residency of each non-voided registration in a household under the guarded node
    # (none: not registered there)
    residencies: tuple[Residency, ...]
    quarantined: bool
    observed: bool


@dataclass(slots=True)
class GateCheck:
    """What was checked at the gate and what the views say about it."""

    direction: str  # in | out
    travellers: tuple[Traveller, ...]
    vehicle: bool
    vehicle_registered: bool  # to a household under the guarded node (vehicles only)
    temperature: float | None
    health_code: HealthCode | None
    test_report_at: datetime | None
    occurred_at: datetime
    from_risk_area: bool
    origin_unresolved: bool = False  # given, but not placed in one division


@dataclass(slots=True)
class Judgement:
    decision: Decision
    reasons: tuple[str, ...]
    breaches: tuple[str, ...]  # subjects under quarantine trying to go out


def reasons_for(policy: CheckpointPolicy, check: GateCheck) -> set[str]:
    found: set[str] = set()
    coming_in = check.direction == "in"
    if not coming_in:
        if any(t.quarantined for t in check.travellers):
            found.add(UNDER_QUARANTINE)
        if any(t.observed and not t.quarantined for t in check.travellers):
            found.add(UNDER_OBSERVATION)
    if check.temperature is not None and check.temperature >= policy.temperature_threshold:
        found.add(FEVER)
    if check.health_code is None:
        found.add(HEALTH_CODE_MISSING)
    elif check.health_code not in policy.health_code_colours:
        found.add(f"health_code_{check.health_code}")
    if not coming_in:
        return found
    if check.from_risk_area:
        found.add(RISK_AREA_ORIGIN)
    if check.origin_unresolved:
        found.add(UNRESOLVED_ORIGIN)
    if policy.test_report_max_hours is not None:
        if check.test_report_at is None:
            found.add(TEST_REPORT_MISSING)
        elif check.occurred_at - check.test_report_at > timedelta(
            hours=policy.test_report_max_hours
        ):
            found.add(TEST_REPORT_EXPIRED)
    if policy.residents_only:
        for t in check.travellers:
            found |= residency_reasons(policy, t)
        if check.vehicle and not check.vehicle_registered:
            found.add(VEHICLE_NOT_REGISTERED)
    return found


def residency_reasons(policy: CheckpointPolicy, traveller: Traveller) -> set[str]:
    """Why a traveller is no resident of a residents-only gate: not registered under it, or
    registered there only as types the policy does not count (each named)."""
    if not traveller.residencies:
        return {NOT_RESIDENT}
    if any(r in policy.resident_types for r in traveller.residencies):
        return set()
    return {f"residency_{r}" for r in traveller.residencies}


def decide(policy: CheckpointPolicy, reasons: set[str]) -> Decision:
    """The precedence of the module docstring."""
    if reasons & STAY_IN:
        return "deny"
    if FEVER in reasons:
        return "refer"
    risk_area = RISK_AREA_ORIGIN in reasons
    if risk_area and policy.risk_area_arrivals == "refer":
        return "refer"
    if reasons & DENYING:
        return "deny"
    if UNRESOLVED_ORIGIN in reasons:
        return "refer"
    if risk_area:
        return "persuade_return"
    return "admit"


def judge(policy: CheckpointPolicy, check: GateCheck) -> Judgement:
    reasons = reasons_for(policy, check)
    breaches = (
        tuple(t.subject_id for t in check.travellers if t.quarantined)
        if check.direction == "out"
        else ()
    )
    return Judgement(
        decide(policy, reasons), tuple(r for r in REASON_ORDER if r in reasons), breaches
    )
