"""Which event adds what to which metric (services.reporting.figures): pure, exact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.reporting import figures
from services.reporting.projections_figures import ids_of
from shared.contracts import screening
from shared.contracts.checkpoint import CrossingRecorded
from shared.contracts.screening import (
    HouseholdVisited,
    PersonInquired,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    TemperatureRecorded,
    VaccineDoseGiven,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2020, 2, 3, 10, tzinfo=UTC)


def visit(**extra: object) -> HouseholdVisited:
    fields: dict[str, object] = {
        "visit_id": "v1",
        "household_id": "h1",
        "method": "door",
        "outcome": "screened",
        "visitor": "w",
        **extra,
    }
    fields.setdefault("screens_household", fields["outcome"] == "screened")
    return HouseholdVisited.model_validate(fields)


def test_a_fact_belongs_to_the_day_of_occurred_at_in_the_zone() -> None:
    # 2020-02-03 17:30 UTC is 2020-02-04 01:30 in Shanghai
    assert figures.day_of(datetime(2020, 2, 3, 17, 30, tzinfo=UTC), SHANGHAI) == date(2020, 2, 4)
    assert figures.day_of(datetime(2020, 2, 3, 15, 59, tzinfo=UTC), SHANGHAI) == date(2020, 2, 3)


def test_ancestor_ids_come_from_the_path_labels() -> None:
    assert ids_of("root.street_a.comm") == ["root", "street-a", "comm"]
    assert ids_of("") == []


def test_registry_stocks() -> None:
    assert figures.household_registered() == [("stock.households", 1)]
    assert figures.person_stock("resident", ["低保", "党员"]) == [
        ("stock.persons", 1),
        ("stock.persons.resident", 1),
        ("stock.vulnerable", 1),
    ]
    assert figures.person_stock("visitor", [], -1) == [
        ("stock.persons", -1),
        ("stock.persons.visitor", -1),
    ]
    assert figures.residency_changed("resident", "temporary") == [
        ("stock.persons.resident", -1),
        ("stock.persons.temporary", 1),
    ]
    assert figures.residency_changed("resident", "resident") == []
    assert figures.tags_changed([], ["残疾"]) == [("stock.vulnerable", 1)]
    assert figures.tags_changed(["残疾"], ["残疾", "特困"]) == []
    assert figures.tags_changed(["孤寡老人"], ["党员"]) == [("stock.vulnerable", -1)]


def test_visits_count_by_method_and_outcome_and_signed_letters_are_counted() -> None:
    assert figures.visit_flows(visit(method="phone", outcome="absent")) == [
        ("visits", 1),
        ("visits.phone", 1),
        ("visits.outcome.absent", 1),
    ]
    signed = visit(method="notice", commitment_signed=True)
    assert figures.visit_flows(signed) == [
        ("visits", 1),
        ("visits.notice", 1),
        ("visits.outcome.screened", 1),
        ("visits.signed", 1),
    ]


def test_the_screened_stock_moves_with_the_earliest_standing_screened_visit() -> None:
    d1, d2 = date(2020, 2, 1), date(2020, 2, 3)
    assert figures.screened_since_moved(None, d2) == [(d2, 1)]
    assert figures.screened_since_moved(d2, d2) == []
    assert figures.screened_since_moved(d2, d1) == [(d2, -1), (d1, 1)]  # an earlier visit
    assert figures.screened_since_moved(d1, None) == [(d1, -1)]  # its only visit voided


def test_inquiries_and_fevers() -> None:
    calm = PersonInquired(inquiry_id="i", subject_id="p1", inquirer="w", temperature=36.5)
    hot = PersonInquired(inquiry_id="i", subject_id="p1", inquirer="w", temperature=37.3)
    assert figures.inquiry_flows(calm) == [("inquiries", 1)]
    assert figures.inquiry_flows(hot) == [("inquiries", 1), ("fevers", 1)]


def test_key_persons_count_once_and_add_only_new_reasons() -> None:
    assert figures.key_person_flagged(None, ["fever", "close_contact"]) == [
        ("key_persons.flagged", 1),
        ("stock.key_persons", 1),
        ("key_persons.flagged.close_contact", 1),
        ("stock.key_persons.close_contact", 1),
        ("key_persons.flagged.fever", 1),
        ("stock.key_persons.fever", 1),
    ]
    assert figures.key_person_flagged(frozenset({"fever"}), ["fever"]) == []
    assert figures.key_person_flagged(frozenset({"fever"}), ["symptoms"]) == [
        ("key_persons.flagged.symptoms", 1),
        ("stock.key_persons.symptoms", 1),
    ]
    assert figures.key_person_cleared(frozenset({"fever", "symptoms"})) == [
        ("key_persons.cleared", 1),
        ("stock.key_persons", -1),
        ("stock.key_persons.fever", -1),
        ("stock.key_persons.symptoms", -1),
    ]
    assert figures.key_person_cleared(None) == []


def ordered(type_: str = "home") -> QuarantineOrdered:
    return QuarantineOrdered.model_validate(
        {
            "quarantine_id": "q",
            "subject_id": "p1",
            "type": type_,
            "starts_at": NOW,
            "planned_end": "2020-02-17",
        }
    )


def test_watch_transitions_move_the_stocks() -> None:
    step = figures.observation_started(None)
    assert step.watch == "observation"
    assert step.changes == [("observations.started", 1), ("stock.under_observation", 1)]

    step = figures.quarantine_ordered("observation", ordered("home"))
    assert step.watch == "home"
    assert step.changes == [
        ("quarantines.ordered", 1),
        ("quarantines.ordered.home", 1),
        ("stock.under_observation", -1),
        ("stock.under_quarantine", 1),
        ("stock.under_quarantine.home", 1),
    ]
    assert figures.quarantine_extended("home").changes == [("quarantines.extended", 1)]

    to_site = QuarantineTransferred(
        quarantine_id="q", subject_id="p1", to="centralized", destination="酒店", transferred_at=NOW
    )
    step = figures.quarantine_transferred("home", to_site)
    assert step.watch == "centralized"
    assert step.changes == [
        ("quarantines.transferred", 1),
        ("quarantines.transferred.centralized", 1),
        ("stock.under_quarantine", -1),
        ("stock.under_quarantine.home", -1),
        ("stock.under_quarantine", 1),
        ("stock.under_quarantine.centralized", 1),
    ]
    released = QuarantineReleased(quarantine_id="q", subject_id="p1", released_at=NOW, reason="x")
    step = figures.quarantine_released("centralized", released)
    assert step.watch is None
    assert step.changes == [
        ("quarantines.released", 1),
        ("stock.under_quarantine", -1),
        ("stock.under_quarantine.centralized", -1),
    ]
    from_observation = QuarantineReleased(subject_id="p1", released_at=NOW, reason="x")
    assert figures.quarantine_released("observation", from_observation).changes == [
        ("observations.released", 1),
        ("stock.under_observation", -1),
    ]


def test_follow_ups_tests_doses_crossings() -> None:
    reading = TemperatureRecorded(
        reading_id="r",
        subject_id="p1",
        celsius=38.0,
        slot_day=date(2020, 2, 3),
        slot="08:00-10:00",
        late=True,
        recorded_by="m",
    )
    assert figures.temperature_flows(reading) == [
        ("followups.done", 1),
        ("followups.late", 1),
        ("fevers", 1),
    ]
    assert figures.followup_missed() == [("followups.missed", 1)]
    positive = screening.TestResulted(sample_id="s", subject_id="p1", result="positive")
    assert figures.result_flows(positive) == [("tests.resulted", 1), ("tests.positive", 1)]
    dose = VaccineDoseGiven(dose_id="d", subject_id="p1", dose_number=2, vaccine="v", given_by="m")
    assert figures.dose_given(dose) == [("vaccination.doses", 1), ("vaccination.dose.2", 1)]
    crossing = CrossingRecorded(
        crossing_id="c",
        checkpoint_id="k",
        node_id="g1",
        kind="person",
        direction="in",
        decision="persuade_return",
        reasons=["risk_area"],
        recorded_by="g",
    )
    assert figures.crossing_flows(crossing) == [("crossings", 1), ("crossings.persuade_return", 1)]
    assert figures.breach() == [("breaches", 1)]


def test_coverage_is_screened_over_households() -> None:
    assert figures.coverage_pct({"households": 3, "screened_households": 1}) == 33.33
    assert figures.coverage_pct({"households": 0}) is None
    assert figures.is_stock("stock.persons") and not figures.is_stock("visits")
