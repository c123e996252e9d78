"""Mass-testing rounds, samples and results, vaccine doses, as given / when / then.

喻屯镇 runs round 3 of mass testing on 2022-04-10..11 (seed 004: 全民核酸检测, "7天1检").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from services.screening.domain import testing as domain
from services.screening.domain.testing import (
    CollectSample,
    Dose,
    GiveDose,
    Sample,
    StartRound,
    Vaccination,
    decide_collect,
    decide_dose,
    decide_result,
    decide_start_round,
    evolve_round,
    evolve_sample,
    evolve_vaccination,
)
from shared.contracts import EventPayload
from shared.contracts import screening as contract
from shared.errors import DomainError, Refusal

START = StartRound("yutun-r3", "yutun", 3, date(2022, 4, 10), date(2022, 4, 11), True)
ROUND = domain.TestRound("yutun-r3", "yutun", 3, date(2022, 4, 10), date(2022, 4, 11), 1)
COLLECT = CollectSample("s-1", "p-zhang", "yutun-r3", ROUND, date(2022, 4, 10), "medic-1")
SAMPLE = Sample("s-1", "p-zhang", "yutun-r3", None, 1)


def fold(evolve: Any, events: list[EventPayload]) -> Any:
    state = None
    for version, event in enumerate(events, start=1):
        state = evolve(state, event, version)
    return state


# -- rounds ----------------------------------------------------------------------------------


def test_a_round_starts_over_a_place_and_starting_it_again_changes_nothing() -> None:
    events = decide_start_round(None, START)
    assert events == [
        contract.TestRoundStarted(
            round_id="yutun-r3",
            node_id="yutun",
            number=3,
            starts_on=date(2022, 4, 10),
            ends_on=date(2022, 4, 11),
        )
    ]
    state = fold(evolve_round, events)
    assert state == ROUND
    assert decide_start_round(state, START) == []
    with pytest.raises(DomainError) as info:
        decide_start_round(state, replace(START, number=4))
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field", "refusal"),
    [
        (replace(START, node_known=False), "node_id", Refusal.INVALID),
        (replace(START, number=0), "number", Refusal.INVALID),
        (replace(START, ends_on=date(2022, 4, 9)), "ends_on", Refusal.INVALID),
        (replace(START, ends_on=date(2022, 5, 30)), "ends_on", Refusal.INVALID),
        (replace(START, number_taken_by="yutun-r3-bis"), "number", Refusal.CONFLICT),
    ],
    ids=[
        "unknown place",
        "round 0",
        "ends before it starts",
        "longer than a month",
        "the number is taken at the place",
    ],
)
def test_bad_rounds_are_refused(cmd: StartRound, field: str, refusal: Refusal) -> None:
    with pytest.raises(DomainError) as info:
        decide_start_round(None, cmd)
    assert info.value.field == field and info.value.refusal is refusal


# -- samples ---------------------------------------------------------------------------------

COLLECT_CASES = [
    # (case, given, when, then: "collected" | [] | (field, refusal))
    ("in its round", None, COLLECT, "collected"),
    ("without a round", None, replace(COLLECT, round_id=None, round=None), "collected"),
    ("on the round's last day", None, replace(COLLECT, day=date(2022, 4, 11)), "collected"),
    (
        "the day after the round",
        None,
        replace(COLLECT, day=date(2022, 4, 12)),
        ("round_id", Refusal.INVALID),
    ),
    ("an unknown round", None, replace(COLLECT, round=None), ("round_id", Refusal.INVALID)),
    ("the same sample again", SAMPLE, COLLECT, []),
    (
        "its id reused for someone else",
        SAMPLE,
        replace(COLLECT, subject_id="p-li"),
        ("id", Refusal.CONFLICT),
    ),
]


@pytest.mark.parametrize(
    ("given", "when", "then"),
    [case[1:] for case in COLLECT_CASES],
    ids=[case[0] for case in COLLECT_CASES],
)
def test_collecting_a_sample(given: Sample | None, when: CollectSample, then: Any) -> None:
    if then == "collected":
        assert decide_collect(given, when) == [
            contract.SampleCollected(
                sample_id="s-1",
                subject_id="p-zhang",
                round_id=when.round_id,
                collected_by="medic-1",
            )
        ]
    elif then == []:
        assert decide_collect(given, when) == []
    else:
        with pytest.raises(DomainError) as info:
            decide_collect(given, when)
        assert (info.value.field, info.value.refusal) == then


RESULT_CASES = [
    ("a first result", SAMPLE, "negative", "resulted"),
    ("the same result again", replace(SAMPLE, result="positive"), "positive", []),
    ("another result afterwards", replace(SAMPLE, result="negative"), "positive", Refusal.CONFLICT),
    ("no such sample", None, "negative", Refusal.NOT_FOUND),
]


@pytest.mark.parametrize(
    ("given", "result", "then"),
    [case[1:] for case in RESULT_CASES],
    ids=[case[0] for case in RESULT_CASES],
)
def test_a_sample_gets_one_result(given: Sample | None, result: Any, then: Any) -> None:
    if then == "resulted":
        events = decide_result(given, result)
        assert events == [
            contract.TestResulted(sample_id="s-1", subject_id="p-zhang", result=result)
        ]
        state = evolve_sample(given, events[0], 2)
        assert state is not None and state.result == result and state.version == 2
    elif then == []:
        assert decide_result(given, result) == []
    else:
        with pytest.raises(DomainError) as info:
            decide_result(given, result)
        assert info.value.refusal is then


def test_a_collected_sample_folds_to_its_state() -> None:
    assert fold(evolve_sample, decide_collect(None, COLLECT)) == SAMPLE


# -- vaccination -----------------------------------------------------------------------------

SINOPHARM = "北京生物"
TWO = Vaccination("p-zhang", (Dose("d-1", 1, SINOPHARM), Dose("d-2", 2, SINOPHARM)), 2)


def give(number: int, dose_id: str = "d-3", vaccine: str = SINOPHARM) -> GiveDose:
    return GiveDose(dose_id, "p-zhang", number, vaccine, "medic-1")


DOSE_CASES = [
    ("a first dose", None, give(1, "d-1"), "given"),
    ("the third after two", TWO, give(3), "given"),
    ("the second again under a new id", TWO, give(2, "d-9"), []),
    ("the second again under its id", TWO, give(2, "d-2"), []),
    ("skipping a dose", TWO, give(4), ("dose_number", Refusal.INVALID)),
    ("a first dose that is not the first", None, give(2), ("dose_number", Refusal.INVALID)),
    ("the second with another vaccine", TWO, give(2, "d-9", "科兴"), ("vaccine", Refusal.CONFLICT)),
    ("a dose id reused for another number", TWO, give(3, "d-1"), ("id", Refusal.CONFLICT)),
    ("no vaccine named", None, give(1, "d-1", " "), ("vaccine", Refusal.INVALID)),
]


@pytest.mark.parametrize(
    ("given", "when", "then"),
    [case[1:] for case in DOSE_CASES],
    ids=[case[0] for case in DOSE_CASES],
)
def test_doses_are_given_in_order(given: Vaccination | None, when: GiveDose, then: Any) -> None:
    if then == "given":
        events = decide_dose(given, when)
        assert events == [
            contract.VaccineDoseGiven(
                dose_id=when.dose_id,
                subject_id="p-zhang",
                dose_number=when.dose_number,
                vaccine=SINOPHARM,
                given_by="medic-1",
            )
        ]
        state = evolve_vaccination(given, events[0], (given.version if given else 0) + 1)
        assert state is not None and state.dose(when.dose_number) == Dose(
            when.dose_id, when.dose_number, SINOPHARM
        )
    elif then == []:
        assert decide_dose(given, when) == []
    else:
        with pytest.raises(DomainError) as info:
            decide_dose(given, when)
        assert (info.value.field, info.value.refusal) == then


def test_no_more_than_five_doses() -> None:
    five = Vaccination("p-zhang", tuple(Dose(f"d-{n}", n, SINOPHARM) for n in range(1, 6)), 5)
    with pytest.raises(DomainError) as info:
        decide_dose(five, give(6, "d-6"))
    assert info.value.field == "dose_number"
