"""Risk areas, rules, inquiries and key persons (重点人员), as given / when / then.

武汉 (4201) is a risk area from 2020-01-01 until it is lifted on 2020-04-08; inquiries are made
in 金堂 on 2020-02-01 with the default rules (37.3 °C, 14 days back) unless a case says other.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from services.screening.domain.key_persons import (
    DEFAULT_RULES,
    DeclareRiskArea,
    Flag,
    Inquiry,
    KeyPerson,
    Reaction,
    RiskArea,
    Rules,
    check_subject_id,
    decide_change_rules,
    decide_clear,
    decide_declare_risk_area,
    decide_flag,
    decide_inquiry,
    decide_lift_risk_area,
    evolve_key_person,
    evolve_risk_area,
    evolve_rules,
    matched_reasons,
    reaction_to,
)
from services.screening.handlers.referrals import referral_reasons
from shared.contracts import EventPayload
from shared.contracts import screening as contract
from shared.contracts.screening import (
    KeyPersonCleared,
    KeyPersonFlagged,
    KeyPersonRulesChanged,
    PersonInquired,
    RiskAreaDeclared,
    RiskAreaLifted,
    TravelStop,
)
from shared.errors import DomainError, Refusal
from tests.unit.test_contracts import envelope

DAY = date(2020, 2, 1)
WUHAN = RiskArea("wuhan", "湖北省武汉市", "high", ("4201",), date(2020, 1, 1), None, None, 1)
LIFTED_WUHAN = replace(WUHAN, lifted_on=date(2020, 1, 20))


def stay(
    code: str | None = "420100",
    arrived: date | None = None,
    left: date | None = None,
    place: str = "湖北省武汉市",
) -> TravelStop:
    return TravelStop(place=place, region_code=code, arrived_on=arrived, left_on=left)


def inquiry(
    travel: tuple[TravelStop, ...] = (),
    close_contact: bool = False,
    symptoms: tuple[str, ...] = (),
    temperature: float | None = None,
    day: date = DAY,
) -> Inquiry:
    return Inquiry(
        inquiry_id="inq-1",
        subject_id="p-zhang",
        household_id="h-301",
        travel=travel,
        close_contact=close_contact,
        symptoms=symptoms,
        temperature=temperature,
        inquirer="worker-1",
        day=day,
    )


def fold(evolve: Any, events: list[EventPayload], state: Any = None) -> Any:
    for version, event in enumerate(events, start=1):
        state = evolve(state, event, version)
    return state


# -- which inquiries the rules match ---------------------------------------------------------

BEFORE = DAY - timedelta(days=14)

RULE_CASES = [
    # (case, inquiry, areas, rules, reasons)
    ("nothing to report", inquiry(), [WUHAN], DEFAULT_RULES, []),
    (
        "a stay in 武汉 last week",
        inquiry((stay(left=DAY - timedelta(7)),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "the code prefix matches a city code",
        inquiry((stay("420102", left=DAY),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "the province alone is not the city",
        inquiry((stay("42", left=DAY),)),
        [WUHAN],
        DEFAULT_RULES,
        [],
    ),
    ("another city of 湖北", inquiry((stay("420600", left=DAY),)), [WUHAN], DEFAULT_RULES, []),
    (
        "left exactly 14 days before: inside the window",
        inquiry((stay(left=BEFORE),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "left 15 days before: outside the window",
        inquiry((stay(left=BEFORE - timedelta(1)),)),
        [WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "a 7-day window makes last week's stay old",
        inquiry((stay(left=DAY - timedelta(8)),)),
        [WUHAN],
        Rules(37.3, 7),
        [],
    ),
    (
        "a stay with no dates covers the window",
        inquiry((stay(),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a place named without a code is resolved to its division",
        inquiry((stay(None, left=DAY),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a partial name: 武汉",
        inquiry((stay(None, left=DAY, place="武汉"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a district of the area, by name",
        inquiry((stay(None, left=DAY, place="武昌区"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a place of another city, by name",
        inquiry((stay(None, left=DAY, place="湖北省黄石市"),)),
        [WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "a name of several divisions is unresolved, flagged for review",
        inquiry((stay(None, left=DAY, place="鼓楼区"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["unresolved_travel"],
    ),
    (
        "an unknown place is unresolved",
        inquiry((stay(None, left=DAY, place="火星"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["unresolved_travel"],
    ),
    (
        "an unknown code with a name that does not resolve is unresolved",
        inquiry((stay("429999", left=DAY, place="某地"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["unresolved_travel"],
    ),
    (
        "an unknown code still matches an area by prefix",
        inquiry((stay("420199", left=DAY, place="某地"),)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area", "unresolved_travel"],
    ),
    (
        "an unresolved stay before the window cannot have been in a risk area",
        inquiry((stay(None, left=BEFORE - timedelta(1), place="鼓楼区"),)),
        [WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "an unresolved stay partly while an area was active",
        inquiry((stay(None, left=DAY, place="鼓楼区"),)),
        [LIFTED_WUHAN],
        DEFAULT_RULES,
        ["unresolved_travel"],
    ),
    (
        "an unresolved stay after every area was lifted",
        inquiry((stay(None, arrived=date(2020, 1, 25), left=DAY, place="鼓楼区"),)),
        [LIFTED_WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "an unresolved stay with no risk area at all",
        inquiry((stay(None, left=DAY, place="鼓楼区"),)),
        [],
        DEFAULT_RULES,
        [],
    ),
    (
        "the stay ended before the area was declared",
        inquiry((stay(arrived=date(2019, 12, 20), left=date(2019, 12, 31)),), day=date(2020, 1, 5)),
        [WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "the stay's last day is the area's first day",
        inquiry((stay(arrived=date(2019, 12, 20), left=date(2020, 1, 1)),), day=date(2020, 1, 5)),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a stay the day before the lift counts",
        inquiry((stay(left=date(2020, 1, 19)),)),
        [LIFTED_WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area"],
    ),
    (
        "a stay from the lift day on does not",
        inquiry((stay(arrived=date(2020, 1, 20), left=date(2020, 1, 25)),)),
        [LIFTED_WUHAN],
        DEFAULT_RULES,
        [],
    ),
    (
        "an area whose validity ended",
        inquiry((stay(left=DAY),)),
        [replace(WUHAN, valid_to=date(2020, 1, 10))],
        DEFAULT_RULES,
        [],
    ),
    ("close contact", inquiry(close_contact=True), [], DEFAULT_RULES, ["close_contact"]),
    ("37.2 °C is no fever", inquiry(temperature=37.2), [], DEFAULT_RULES, []),
    ("37.3 °C exactly is a fever", inquiry(temperature=37.3), [], DEFAULT_RULES, ["fever"]),
    (
        "a lower threshold makes 37.0 a fever",
        inquiry(temperature=37.0),
        [],
        Rules(37.0, 14),
        ["fever"],
    ),
    ("any symptom", inquiry(symptoms=("咳嗽",)), [], DEFAULT_RULES, ["symptoms"]),
    ("blank symptoms are none", inquiry(symptoms=(" ", "")), [], DEFAULT_RULES, []),
    (
        "everything at once, in the contract's order",
        inquiry((stay(left=DAY),), True, ("发热", "乏力"), 38.5),
        [WUHAN],
        DEFAULT_RULES,
        ["returnee_risk_area", "close_contact", "fever", "symptoms"],
    ),
]


@pytest.mark.parametrize(
    ("inq", "areas", "rules", "reasons"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_the_rules_find_these_reasons(
    inq: Inquiry, areas: list[RiskArea], rules: Rules, reasons: list[str]
) -> None:
    [event] = decide_inquiry(None, inq)
    assert isinstance(event, PersonInquired)
    checked = replace(inq, symptoms=tuple(event.symptoms))
    assert matched_reasons(checked, rules, areas) == reasons


# -- recording an inquiry --------------------------------------------------------------------


def test_an_inquiry_records_the_answers_with_symptoms_cleaned() -> None:
    [event] = decide_inquiry(None, inquiry(symptoms=(" 发热 ", "发热", "咳嗽"), temperature=37.5))
    assert event == PersonInquired(
        inquiry_id="inq-1",
        subject_id="p-zhang",
        household_id="h-301",
        symptoms=["发热", "咳嗽"],
        temperature=37.5,
        inquirer="worker-1",
    )


def test_the_same_inquiry_again_changes_nothing_and_its_id_reused_is_a_conflict() -> None:
    [first] = decide_inquiry(None, inquiry(temperature=36.5))
    assert isinstance(first, PersonInquired)
    assert decide_inquiry(first, replace(inquiry(temperature=36.5), inquirer="worker-2")) == []
    with pytest.raises(DomainError) as info:
        decide_inquiry(first, inquiry(temperature=38.0))
    assert info.value.refusal is Refusal.CONFLICT and info.value.field == "id"


@pytest.mark.parametrize(
    ("inq", "field"),
    [
        (inquiry((stay(arrived=date(2020, 1, 20), left=date(2020, 1, 10)),)), "travel.0.left_on"),
        (inquiry((stay(arrived=DAY + timedelta(1)),)), "travel.0.arrived_on"),
        (inquiry((stay(left=DAY), stay("42x1"))), "travel.1.region_code"),
        (inquiry(temperature=29.0), "temperature"),
        (inquiry(symptoms=("咳" * 41,)), "symptoms"),
    ],
    ids=[
        "left before arrived",
        "arrived after the inquiry",
        "bad code",
        "no body is 29 °C",
        "symptom too long",
    ],
)
def test_implausible_answers_are_refused_naming_the_field(inq: Inquiry, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_inquiry(None, inq)
    assert info.value.field == field and info.value.refusal is Refusal.INVALID


# -- key persons: flag, no duplicate flags, clear, flag again --------------------------------


def flag(*reasons: str, source: Any = "inquiry", source_id: str = "inq-1") -> Flag:
    return Flag("p-zhang", reasons, source, source_id, "h-301", "hmac", "1101**", "张*")


FLAGGED = KeyPerson("p-zhang", True, frozenset({"fever"}), "h-301", 1)
CLEARED = KeyPerson("p-zhang", False, frozenset(), "h-301", 2)

FLAG_CASES = [
    # (case, given, when, then: new reasons or None for no event)
    ("a first flag", None, flag("symptoms", "fever"), ["fever", "symptoms"]),
    ("no reasons, no flag", None, flag(), None),
    ("the same reason again is not a new flag", FLAGGED, flag("fever"), None),
    ("only the new reason is flagged", FLAGGED, flag("fever", "close_contact"), ["close_contact"]),
    ("after a clear the same reason flags again", CLEARED, flag("fever"), ["fever"]),
    ("a positive test", FLAGGED, flag("positive_test", source="test"), ["positive_test"]),
]


@pytest.mark.parametrize(
    ("given", "when", "then"),
    [case[1:] for case in FLAG_CASES],
    ids=[case[0] for case in FLAG_CASES],
)
def test_flags_record_only_new_reasons(
    given: KeyPerson | None, when: Flag, then: list[str] | None
) -> None:
    events = decide_flag(given, when)
    if then is None:
        assert events == []
        return
    assert events == [
        KeyPersonFlagged(
            subject_id="p-zhang",
            node_id="h-301",
            reasons=then,  # type: ignore[arg-type]
            source=when.source,
            source_id=when.source_id,
            id_hmac="hmac",
            document_masked="1101**",
            name_masked="张*",
        )
    ]


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(DomainError) as info:
        decide_flag(None, flag("bad_luck"))
    assert info.value.field == "reasons"


def test_clearing_needs_a_flag_and_a_later_flag_makes_a_key_person_again() -> None:
    with pytest.raises(DomainError) as info:
        decide_clear(None, "无异常")
    assert info.value.refusal is Refusal.CONFLICT
    history: list[EventPayload] = [*decide_flag(None, flag("fever", "symptoms"))]
    state = fold(evolve_key_person, history)
    assert state.flagged and state.reasons == {"fever", "symptoms"}
    [cleared] = decide_clear(state, " 居家观察期满 ")
    assert cleared == KeyPersonCleared(subject_id="p-zhang", reason="居家观察期满")
    state = evolve_key_person(state, cleared, 2)
    assert state is not None and not state.flagged and state.reasons == frozenset()
    with pytest.raises(DomainError) as again:
        decide_clear(state, "再次")
    assert again.value.refusal is Refusal.CONFLICT
    [reflagged] = decide_flag(state, flag("fever"))
    state = evolve_key_person(state, reflagged, 3)
    assert state is not None and state.flagged and state.reasons == {"fever"}


def test_a_clear_needs_a_reason() -> None:
    with pytest.raises(DomainError) as info:
        decide_clear(FLAGGED, "  ")
    assert info.value.field == "reason"


@pytest.mark.parametrize(
    ("subject", "ok"),
    [("p-zhang", True), ("h:3f2a9c0e11b4d5e6", True), ("h:short", False), ("a b", False)],
)
def test_a_subject_is_a_person_id_or_an_hmac(subject: str, ok: bool) -> None:
    if ok:
        assert check_subject_id(subject) == subject
    else:
        with pytest.raises(DomainError):
            check_subject_id(subject)


# -- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "days", "then"),
    [
        (37.3, 14, []),
        (37.0, 14, [KeyPersonRulesChanged(fever_threshold=37.0, look_back_days=14)]),
        (37.3, 21, [KeyPersonRulesChanged(fever_threshold=37.3, look_back_days=21)]),
    ],
    ids=["the defaults again", "a lower threshold", "a longer window"],
)
def test_changing_the_rules(threshold: float, days: int, then: list[EventPayload]) -> None:
    assert decide_change_rules(DEFAULT_RULES, threshold, days) == then


@pytest.mark.parametrize(
    ("threshold", "days", "field"),
    [
        (35.0, 14, "fever_threshold"),
        (40.5, 14, "fever_threshold"),
        (37.3, 0, "look_back_days"),
        (37.3, 61, "look_back_days"),
    ],
)
def test_implausible_rules_are_refused(threshold: float, days: int, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_change_rules(DEFAULT_RULES, threshold, days)
    assert info.value.field == field


def test_the_rules_fold_to_the_last_change() -> None:
    state = fold(
        evolve_rules,
        [
            KeyPersonRulesChanged(fever_threshold=37.0, look_back_days=14),
            KeyPersonRulesChanged(fever_threshold=37.5, look_back_days=7),
        ],
        DEFAULT_RULES,
    )
    assert state == Rules(37.5, 7, 2)


# -- risk areas ------------------------------------------------------------------------------

DECLARE = DeclareRiskArea(
    "wuhan", " 湖北省武汉市 ", "high", ("4201", " 4201", "420100"), date(2020, 1, 1), None
)


def test_a_risk_area_is_declared_with_its_codes_cleaned() -> None:
    assert decide_declare_risk_area(None, DECLARE) == [
        RiskAreaDeclared(
            area_id="wuhan",
            name="湖北省武汉市",
            level="high",
            region_codes=["4201", "420100"],
            valid_from=date(2020, 1, 1),
        )
    ]


def test_declaring_again_is_a_no_op_and_other_values_are_a_conflict() -> None:
    state = fold(evolve_risk_area, decide_declare_risk_area(None, DECLARE))
    assert decide_declare_risk_area(state, DECLARE) == []
    with pytest.raises(DomainError) as info:
        decide_declare_risk_area(state, replace(DECLARE, level="medium"))
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (replace(DECLARE, region_codes=()), "region_codes"),
        (replace(DECLARE, region_codes=("武汉",)), "region_codes"),
        (replace(DECLARE, region_codes=("4",)), "region_codes"),
        (replace(DECLARE, valid_to=date(2019, 12, 1)), "valid_to"),
        (replace(DECLARE, name="  "), "name"),
    ],
    ids=["no codes", "a name is not a code", "one digit", "ends before it starts", "no name"],
)
def test_bad_risk_areas_are_refused_naming_the_field(cmd: DeclareRiskArea, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_declare_risk_area(None, cmd)
    assert info.value.field == field


def test_lifting_ends_the_area_on_that_day_once() -> None:
    state = fold(evolve_risk_area, decide_declare_risk_area(None, DECLARE))
    with pytest.raises(DomainError) as unknown:
        decide_lift_risk_area(None, date(2020, 4, 8), "解封")
    assert unknown.value.refusal is Refusal.NOT_FOUND
    [lifted] = decide_lift_risk_area(state, date(2020, 4, 8), "武汉解封")
    assert lifted == RiskAreaLifted(area_id="wuhan", lifted_on=date(2020, 4, 8), reason="武汉解封")
    state = evolve_risk_area(state, lifted, 2)
    assert state is not None
    assert state.active_on(date(2020, 4, 7)) and not state.active_on(date(2020, 4, 8))
    assert decide_lift_risk_area(state, date(2020, 4, 8), "again") == []
    with pytest.raises(DomainError) as other:
        decide_lift_risk_area(state, date(2020, 4, 9), "again")
    assert other.value.refusal is Refusal.CONFLICT
    with pytest.raises(DomainError) as early:
        decide_lift_risk_area(replace(state, lifted_on=None), date(2020, 1, 1), "x")
    assert early.value.field == "lifted_on"


# -- reactions -------------------------------------------------------------------------------

REACTION_CASES = [
    (
        "a reading at the threshold",
        contract.TemperatureRecorded(
            reading_id="r-1",
            subject_id="p-zhang",
            celsius=37.3,
            slot_day=DAY,
            slot="08:00-10:00",
            recorded_by="medic-1",
        ),
        DEFAULT_RULES,
        Reaction("p-zhang", ("fever",), "temperature", "r-1"),
    ),
    (
        "a normal reading",
        contract.TemperatureRecorded(
            reading_id="r-2",
            subject_id="p-zhang",
            celsius=36.8,
            slot_day=DAY,
            slot="08:00-10:00",
            recorded_by="medic-1",
        ),
        DEFAULT_RULES,
        None,
    ),
    (
        "a normal reading under a stricter threshold",
        contract.TemperatureRecorded(
            reading_id="r-3",
            subject_id="p-zhang",
            celsius=37.0,
            slot_day=DAY,
            slot="08:00-10:00",
            recorded_by="medic-1",
        ),
        Rules(37.0, 14),
        Reaction("p-zhang", ("fever",), "temperature", "r-3"),
    ),
    (
        "a positive test",
        contract.TestResulted(sample_id="s-1", subject_id="p-zhang", result="positive"),
        DEFAULT_RULES,
        Reaction("p-zhang", ("positive_test",), "test", "s-1"),
    ),
    (
        "a negative test",
        contract.TestResulted(sample_id="s-2", subject_id="p-zhang", result="negative"),
        DEFAULT_RULES,
        None,
    ),
    ("anything else", KeyPersonCleared(subject_id="p-zhang", reason="x"), DEFAULT_RULES, None),
]


@pytest.mark.parametrize(
    ("event", "rules", "then"),
    [case[1:] for case in REACTION_CASES],
    ids=[case[0] for case in REACTION_CASES],
)
def test_screening_reacts_to_fevers_and_positive_tests(
    event: EventPayload, rules: Rules, then: Reaction | None
) -> None:
    assert reaction_to(event, rules) == then


def test_a_key_person_flag_of_the_first_schema_decodes_as_the_current_one() -> None:
    data = {"subject_id": "p1", "reasons": ["returnee_risk_area"], "source": "inquiry"}
    decoded = contract.CATALOG.decode(envelope("KeyPersonFlagged", data, 1))
    assert decoded == KeyPersonFlagged(
        subject_id="p1", reasons=["returnee_risk_area"], source="inquiry"
    )
    assert KeyPersonFlagged.schema_version == 2
    assert contract.CATALOG.decode(
        envelope("KeyPersonFlagged", {**data, "reasons": ["unresolved_travel"]}, 2)
    ) == KeyPersonFlagged(subject_id="p1", reasons=["unresolved_travel"], source="inquiry")


def test_a_gate_referral_for_an_unplaced_origin_flags_unresolved_travel() -> None:
    assert referral_reasons(["unresolved_origin"]) == ["checkpoint_referral", "unresolved_travel"]
    assert referral_reasons(["risk_area_origin", "fever"]) == [
        "checkpoint_referral",
        "fever",
        "returnee_risk_area",
    ]
