"""How a gate decides, as given (policy, who and what was checked) / when (crossing) / then
(decision, reasons)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.checkpoint.domain.decisions import GateCheck, Traveller, judge
from shared.contracts.checkpoint import CheckpointPolicy, Decision, HealthCode

AT = datetime(2020, 2, 5, 9, 0, tzinfo=UTC)
OPEN = CheckpointPolicy()  # green only, 37.3 °C, no report needed, risk areas referred
CLOSED_COMPOUND = CheckpointPolicy(residents_only=True, test_report_max_hours=48)
PERSUADE = CheckpointPolicy(risk_area_arrivals="persuade_return")

RESIDENT = Traveller("p1", ("resident",), quarantined=False, observed=False)
STRANGER = Traveller("h:abc", (), quarantined=False, observed=False)  # registered nowhere here
TEMPORARY = Traveller("p4", ("temporary",), quarantined=False, observed=False)  # 暂住
VISITOR = Traveller("p5", ("visitor",), quarantined=False, observed=False)  # 访客 of a household
QUARANTINED = Traveller("p2", ("resident",), quarantined=True, observed=False)
OBSERVED = Traveller("p3", ("resident",), quarantined=False, observed=True)
OWNERS_ONLY = CheckpointPolicy(residents_only=True, resident_types=["resident"])


@dataclass(frozen=True)
class Given:
    """A crossing as checked at the gate; defaults: a resident going in, healthy, green."""

    direction: str = "in"
    travellers: tuple[Traveller, ...] = (RESIDENT,)
    vehicle: bool = False
    vehicle_registered: bool = False
    temperature: float | None = 36.5
    health_code: HealthCode | None = "green"
    report_hours_ago: float | None = 12
    from_risk_area: bool = False
    origin_unresolved: bool = False

    def check(self) -> GateCheck:
        report = (
            None if self.report_hours_ago is None else AT - timedelta(hours=self.report_hours_ago)
        )
        return GateCheck(
            self.direction,
            self.travellers,
            self.vehicle,
            self.vehicle_registered,
            self.temperature,
            self.health_code,
            report,
            AT,
            self.from_risk_area,
            self.origin_unresolved,
        )


CASES: list[tuple[str, CheckpointPolicy, Given, Decision, tuple[str, ...]]] = [
    ("a healthy resident comes home", CLOSED_COMPOUND, Given(), "admit", ()),
    ("a stranger at an open gate", OPEN, Given(travellers=(STRANGER,)), "admit", ()),
    ("a registered visitor at an open gate", OPEN, Given(travellers=(VISITOR,)), "admit", ()),
    (
        "a non-resident at a closed compound",
        CLOSED_COMPOUND,
        Given(travellers=(STRANGER,)),
        "deny",
        ("not_resident",),
    ),
    (
        "a registered visitor of a household at a closed compound is an outsider",
        CLOSED_COMPOUND,
        Given(travellers=(VISITOR,)),
        "deny",
        ("residency_visitor",),
    ),
    (
        "a temporary resident at a closed compound is a resident by default",
        CLOSED_COMPOUND,
        Given(travellers=(TEMPORARY,)),
        "admit",
        (),
    ),
    (
        "a gate counting only registered residents refuses a temporary one",
        OWNERS_ONLY,
        Given(travellers=(TEMPORARY,)),
        "deny",
        ("residency_temporary",),
    ),
    (
        "a gate counting only registered residents admits one",
        OWNERS_ONLY,
        Given(travellers=(RESIDENT,)),
        "admit",
        (),
    ),
    (
        "a gate that counts visitors admits them",
        CheckpointPolicy(residents_only=True, resident_types=["resident", "visitor"]),
        Given(travellers=(VISITOR,)),
        "admit",
        (),
    ),
    (
        "registered here as a visitor and as a resident: the resident counts",
        CLOSED_COMPOUND,
        Given(travellers=(Traveller("p6", ("visitor", "resident"), False, False),)),
        "admit",
        (),
    ),
    (
        "a car with a resident, a stranger and a visitor names both reasons",
        CLOSED_COMPOUND,
        Given(travellers=(RESIDENT, STRANGER, VISITOR), vehicle=True, vehicle_registered=True),
        "deny",
        ("not_resident", "residency_visitor"),
    ),
    (
        "a resident's registered car",
        CLOSED_COMPOUND,
        Given(vehicle=True, vehicle_registered=True),
        "admit",
        (),
    ),
    (
        "an unknown car with a resident in it",
        CLOSED_COMPOUND,
        Given(vehicle=True, vehicle_registered=False),
        "deny",
        ("vehicle_not_registered",),
    ),
    ("fever at 37.3 (the threshold itself)", OPEN, Given(temperature=37.3), "refer", ("fever",)),
    ("37.2 is no fever", OPEN, Given(temperature=37.2), "admit", ()),
    ("a yellow code", OPEN, Given(health_code="yellow"), "deny", ("health_code_yellow",)),
    ("no health code shown", OPEN, Given(health_code=None), "deny", ("health_code_missing",)),
    (
        "yellow passes where the policy lets it",
        CheckpointPolicy(health_code_colours=["green", "yellow"]),
        Given(health_code="yellow"),
        "admit",
        (),
    ),
    (
        "no report where one is required",
        CLOSED_COMPOUND,
        Given(report_hours_ago=None),
        "deny",
        ("test_report_missing",),
    ),
    (
        "a report older than allowed",
        CLOSED_COMPOUND,
        Given(report_hours_ago=49),
        "deny",
        ("test_report_expired",),
    ),
    (
        "a report exactly as old as allowed",
        CLOSED_COMPOUND,
        Given(report_hours_ago=48),
        "admit",
        (),
    ),
    (
        "no report needed going out",
        CLOSED_COMPOUND,
        Given("out", report_hours_ago=None),
        "admit",
        (),
    ),
    (
        "an arrival from a risk area, referred",
        OPEN,
        Given(from_risk_area=True),
        "refer",
        ("risk_area_origin",),
    ),
    (
        "an arrival from a risk area, persuaded to go back",
        PERSUADE,
        Given(from_risk_area=True),
        "persuade_return",
        ("risk_area_origin",),
    ),
    (
        "leaving for a risk area is not judged by origin",
        OPEN,
        Given("out", from_risk_area=True),
        "admit",
        (),
    ),
    (
        "an origin the gate cannot place is referred for review",
        OPEN,
        Given(origin_unresolved=True),
        "refer",
        ("unresolved_origin",),
    ),
    (
        "an unplaced origin is referred, not turned back, where risk areas are",
        PERSUADE,
        Given(origin_unresolved=True),
        "refer",
        ("unresolved_origin",),
    ),
    (
        "deny beats an unplaced origin",
        CLOSED_COMPOUND,
        Given(travellers=(STRANGER,), origin_unresolved=True),
        "deny",
        ("unresolved_origin", "not_resident"),
    ),
    (
        "fever beats an unplaced origin",
        OPEN,
        Given(origin_unresolved=True, temperature=38.0),
        "refer",
        ("fever", "unresolved_origin"),
    ),
    (
        "leaving is not judged by an unplaced origin",
        OPEN,
        Given("out", origin_unresolved=True),
        "admit",
        (),
    ),
    (
        "a quarantined person going out",
        OPEN,
        Given("out", travellers=(QUARANTINED,)),
        "deny",
        ("under_quarantine",),
    ),
    ("a quarantined person coming home", OPEN, Given("in", travellers=(QUARANTINED,)), "admit", ()),
    (
        "a person under home observation going out",
        OPEN,
        Given("out", travellers=(OBSERVED,)),
        "deny",
        ("under_observation",),
    ),
    (
        "quarantine beats fever: a quarantined person stays in",
        OPEN,
        Given("out", travellers=(QUARANTINED,), temperature=38.5),
        "deny",
        ("under_quarantine", "fever"),
    ),
    (
        "fever beats residency: a feverish stranger is handed over, not turned away",
        CLOSED_COMPOUND,
        Given(travellers=(STRANGER,), temperature=38.0),
        "refer",
        ("fever", "not_resident"),
    ),
    (
        "a referred risk-area arrival is referred even when denied otherwise",
        CLOSED_COMPOUND,
        Given(travellers=(STRANGER,), from_risk_area=True, health_code="red"),
        "refer",
        ("risk_area_origin", "health_code_red", "not_resident"),
    ),
    (
        "deny beats persuade_return",
        CheckpointPolicy(residents_only=True, risk_area_arrivals="persuade_return"),
        Given(travellers=(STRANGER,), from_risk_area=True),
        "deny",
        ("risk_area_origin", "not_resident"),
    ),
    (
        "a car with a stranger at a closed compound",
        CLOSED_COMPOUND,
        Given(travellers=(RESIDENT, STRANGER), vehicle=True, vehicle_registered=True),
        "deny",
        ("not_resident",),
    ),
    (
        "a car carrying a quarantined passenger out",
        OPEN,
        Given("out", travellers=(RESIDENT, QUARANTINED), vehicle=True),
        "deny",
        ("under_quarantine",),
    ),
]


@pytest.mark.parametrize(
    ("policy", "given", "decision", "reasons"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_the_gate_decides(
    policy: CheckpointPolicy, given: Given, decision: Decision, reasons: tuple[str, ...]
) -> None:
    judgement = judge(policy, given.check())
    assert (judgement.decision, judgement.reasons) == (decision, reasons)


def test_a_quarantined_person_going_out_is_a_breach_and_coming_in_is_not() -> None:
    out = judge(OPEN, Given("out", travellers=(RESIDENT, QUARANTINED), vehicle=True).check())
    assert out.breaches == ("p2",)
    back = judge(OPEN, Given("in", travellers=(QUARANTINED,)).check())
    assert back.breaches == ()
    observed = judge(OPEN, Given("out", travellers=(OBSERVED,)).check())
    assert observed.breaches == ()
