"""Watch and quarantine, follow-up readings, misses and care plans, as given / when / then."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.screening.domain import care
from services.screening.domain.care import (
    DEFAULT_CARE_PLANS,
    CompleteTask,
    PlaceCare,
    SetPlacePlan,
    decide_place_plan,
    decide_place_task,
    decide_subject_task,
    evolve_place,
    parse_plans,
    place_care_due,
    place_care_missed,
    subject_care_due,
    subject_care_missed,
)
from services.screening.domain.slots import SlotRef, parse_slots
from services.screening.domain.watch import (
    EMPTY,
    IllegalTransition,
    Miss,
    Observe,
    OrderQuarantine,
    RecordReading,
    Watch,
    decide_extend,
    decide_observe,
    decide_quarantine,
    decide_reading,
    decide_release,
    decide_transfer,
    evolve,
    first_misses,
    follow_ups_due,
    follow_ups_missed,
)
from shared.contracts import EventPayload
from shared.contracts.screening import (
    CareTaskCompleted,
    CareTaskMissed,
    FollowUpMissed,
    ObservationStarted,
    PlaceCarePlanned,
    QuarantineExtended,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    TemperatureRecorded,
)
from shared.errors import DomainError, Refusal

ZONE = ZoneInfo("Asia/Shanghai")
SLOTS = parse_slots(["08:00-10:00", "16:00-18:00"])
PLANS = parse_plans(DEFAULT_CARE_PLANS)
P = "p-zhang"


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2020, 2, day, hh, mm, tzinfo=ZONE)


NOW = at(5, 12)


def given(*events: EventPayload) -> Watch:
    state = EMPTY
    for version, e in enumerate(events, start=1):
        state = evolve(state, e, version)
    return state


OBSERVED = ObservationStarted(
    subject_id=P,
    node_id="h301",
    starts_at=at(1, 7),
    planned_end=date(2020, 2, 14),
    carer_party_id="doctor-li",
)
ORDERED = QuarantineOrdered(
    quarantine_id="q1",
    subject_id=P,
    node_id="h301",
    type="home",
    place="幸福小区3-2-301",
    starts_at=at(1, 7),
    planned_end=date(2020, 2, 14),
    carer_party_id="doctor-li",
)
RELEASED = QuarantineReleased(
    quarantine_id="q1", subject_id=P, released_at=at(3, 12), reason="期满"
)
TO_HOSPITAL = QuarantineTransferred(
    quarantine_id="q1",
    subject_id=P,
    to="hospital",
    destination="县人民医院",
    transferred_at=at(3, 12),
)

STATES: dict[str, Watch] = {
    "none": EMPTY,
    "under_observation": given(OBSERVED),
    "quarantined": given(ORDERED),
    "released": given(ORDERED, RELEASED),
    "transferred": given(ORDERED, TO_HOSPITAL),
}

COMMANDS: dict[str, Callable[[Watch], list[EventPayload]]] = {
    "observe": lambda s: decide_observe(
        s, Observe(P, "h301", at(4, 7), date(2020, 2, 18), "doctor-wang"), ZONE
    ),
    "order": lambda s: decide_quarantine(
        s,
        OrderQuarantine(
            "q2", P, "h301", "centralized", "隔离酒店", at(4, 7), date(2020, 2, 18), None
        ),
        ZONE,
    ),
    "extend": lambda s: decide_extend(s, "q1", date(2020, 2, 21), "复检"),
    "release": lambda s: decide_release(s, "q1", "期满", NOW),
    "release_observation": lambda s: decide_release(s, None, "无异常", NOW),
    "transfer": lambda s: decide_transfer(s, "q1", "hospital", "县人民医院", NOW),
    "transfer_observation": lambda s: decide_transfer(s, None, "hospital", "县人民医院", NOW),
}

ALLOWED = {
    ("none", "observe"): ObservationStarted,
    ("none", "order"): QuarantineOrdered,
    ("under_observation", "order"): QuarantineOrdered,
    ("under_observation", "release_observation"): QuarantineReleased,
    ("under_observation", "transfer_observation"): QuarantineTransferred,
    ("quarantined", "extend"): QuarantineExtended,
    ("quarantined", "release"): QuarantineReleased,
    ("quarantined", "transfer"): QuarantineTransferred,
    ("released", "observe"): ObservationStarted,
    ("released", "order"): QuarantineOrdered,
    ("transferred", "observe"): ObservationStarted,
    ("transferred", "order"): QuarantineOrdered,
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_transition_is_allowed_or_refused_naming_the_current_state(
    state: str, command: str
) -> None:
    expected = ALLOWED.get((state, command))
    if expected is not None:
        [event] = COMMANDS[command](STATES[state])
        assert isinstance(event, expected)
        return
    with pytest.raises(IllegalTransition) as info:
        COMMANDS[command](STATES[state])
    assert info.value.refusal is Refusal.CONFLICT
    assert info.value.current_state == state


def test_the_same_observation_again_is_a_no_op_and_another_is_a_conflict() -> None:
    same = Observe(P, "h301", at(1, 7), date(2020, 2, 14), "doctor-li")
    assert decide_observe(STATES["under_observation"], same, ZONE) == []
    with pytest.raises(IllegalTransition):
        decide_observe(
            STATES["under_observation"],
            Observe(P, "h301", at(1, 7), date(2020, 2, 20), "doctor-li"),
            ZONE,
        )


def test_a_quarantine_from_observation_keeps_the_carer_and_one_continuous_watch() -> None:
    order = OrderQuarantine("q2", P, "h301", "home", None, at(2, 9), date(2020, 2, 16), None)
    [event] = decide_quarantine(STATES["under_observation"], order, ZONE)
    assert isinstance(event, QuarantineOrdered) and event.carer_party_id == "doctor-li"
    state = evolve(STATES["under_observation"], event, 2)
    assert state.status == "quarantined" and state.quarantine_type == "home"
    assert [(s.kind, s.start, s.end) for s in state.segments] == [
        ("observation", at(1, 7), at(2, 9)),
        ("home", at(2, 9), None),
    ]
    assert len(state.periods) == 1 and state.since == at(1, 7)


def test_retrying_an_order_is_a_no_op_and_reusing_its_id_otherwise_is_a_conflict() -> None:
    retry = OrderQuarantine("q1", P, "h301", "home", None, at(1, 7), date(2020, 2, 14), None)
    assert decide_quarantine(STATES["quarantined"], retry, ZONE) == []
    assert decide_quarantine(STATES["released"], retry, ZONE) == []  # a late retry
    other = OrderQuarantine("q1", P, "h301", "centralized", None, at(4, 7), date(2020, 2, 20), None)
    with pytest.raises(IllegalTransition) as info:
        decide_quarantine(STATES["released"], other, ZONE)
    assert info.value.code == "quarantine-exists" and info.value.current_state == "released"


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (
            OrderQuarantine("q2", P, "h", "home", None, at(4, 7), date(2020, 2, 3), None),
            "planned_end",
        ),
        # a new episode cannot start before the last one ended
        (
            OrderQuarantine("q2", P, "h", "home", None, at(3, 11), date(2020, 2, 20), None),
            "starts_at",
        ),
    ],
)
def test_bad_quarantine_orders_are_422_naming_the_field(cmd: OrderQuarantine, field: str) -> None:
    with pytest.raises(DomainError) as info:
        decide_quarantine(STATES["released"], cmd, ZONE)
    assert info.value.refusal is Refusal.INVALID and info.value.field == field


def test_an_extension_must_be_later_and_records_the_previous_end() -> None:
    assert decide_extend(STATES["quarantined"], "q1", date(2020, 2, 21), "复检") == [
        QuarantineExtended(
            quarantine_id="q1",
            subject_id=P,
            planned_end=date(2020, 2, 21),
            previous_end=date(2020, 2, 14),
            reason="复检",
        )
    ]
    for end in (date(2020, 2, 14), date(2020, 2, 10)):
        with pytest.raises(DomainError) as info:
            decide_extend(STATES["quarantined"], "q1", end, "复检")
        assert info.value.field == "planned_end" and info.value.refusal is Refusal.INVALID
    with pytest.raises(IllegalTransition):
        decide_extend(STATES["quarantined"], "q9", date(2020, 2, 21), "别的隔离")


def test_a_transfer_to_a_centralized_site_continues_the_quarantine() -> None:
    [event] = decide_transfer(STATES["quarantined"], "q1", "centralized", "隔离酒店", at(3, 12))
    state = evolve(STATES["quarantined"], event, 2)
    assert (state.status, state.quarantine_type, state.place) == (
        "quarantined",
        "centralized",
        "隔离酒店",
    )
    assert state.kind_at(at(3, 13)) == "centralized" and state.kind_at(at(2, 13)) == "home"
    with pytest.raises(DomainError) as info:
        decide_transfer(state, "q1", "centralized", "隔离酒店", at(3, 13))
    assert info.value.field == "destination"
    with pytest.raises(DomainError) as info:
        decide_transfer(STATES["under_observation"], None, "centralized", "隔离酒店", NOW)
    assert info.value.field == "to"


def test_releasing_a_quarantine_not_begun_yet_ends_it_at_its_start() -> None:
    future = OrderQuarantine("q5", P, "h", "home", None, at(9, 7), date(2020, 2, 20), None)
    state = given(*decide_quarantine(EMPTY, future, ZONE))
    [event] = decide_release(state, "q5", "撤销", NOW)
    assert isinstance(event, QuarantineReleased) and event.released_at == at(9, 7)


# -- readings --------------------------------------------------------------------------------


def reading(rid: str = "r1", when: datetime | None = None, celsius: float = 36.6) -> RecordReading:
    return RecordReading(rid, P, celsius, when or at(2, 8, 30), "medic-1")


@pytest.mark.parametrize(
    ("when", "day", "slot"),
    [
        (at(2, 8, 30), date(2020, 2, 2), "08:00-10:00"),
        (at(2, 12), date(2020, 2, 2), "08:00-10:00"),
        (at(2, 21), date(2020, 2, 2), "16:00-18:00"),
    ],
)
def test_a_reading_counts_for_its_slot(when: datetime, day: date, slot: str) -> None:
    assert decide_reading(STATES["quarantined"], reading(when=when), SLOTS, ZONE, NOW) == [
        TemperatureRecorded(
            reading_id="r1",
            subject_id=P,
            celsius=36.6,
            slot_day=day,
            slot=slot,
            late=False,
            recorded_by="medic-1",
        )
    ]


@pytest.mark.parametrize(
    ("state", "cmd", "code", "field", "refusal"),
    [
        (
            "quarantined",
            reading(celsius=29.9),
            "implausible-temperature",
            "celsius",
            Refusal.INVALID,
        ),
        (
            "quarantined",
            reading(celsius=45.1),
            "implausible-temperature",
            "celsius",
            Refusal.INVALID,
        ),
        (
            "quarantined",
            reading(when=at(2, 7, 30)),
            "before-first-slot",
            "occurred_at",
            Refusal.INVALID,
        ),
        (
            "quarantined",
            reading(when=NOW + timedelta(hours=1)),
            "in-the-future",
            "occurred_at",
            Refusal.INVALID,
        ),
        ("none", reading(), "not-under-watch", None, Refusal.CONFLICT),
        ("released", reading(when=at(4, 9)), "not-under-watch", None, Refusal.CONFLICT),
        ("quarantined", reading(when=at(1, 6, 30)), "not-under-watch", None, Refusal.CONFLICT),
    ],
)
def test_refused_readings(
    state: str, cmd: RecordReading, code: str, field: str | None, refusal: Refusal
) -> None:
    with pytest.raises(DomainError) as info:
        decide_reading(STATES[state], cmd, SLOTS, ZONE, NOW)
    assert (info.value.code, info.value.field, info.value.refusal) == (code, field, refusal)
    if isinstance(info.value, IllegalTransition):
        assert info.value.current_state == state


def test_a_back_dated_reading_from_while_watched_is_accepted_after_release() -> None:
    [event] = decide_reading(STATES["released"], reading(when=at(2, 16, 30)), SLOTS, ZONE, NOW)
    assert isinstance(event, TemperatureRecorded) and event.slot == "16:00-18:00"


def test_a_reading_for_a_missed_slot_is_late_and_a_retry_is_a_no_op() -> None:
    missed = FollowUpMissed(subject_id=P, slot_day=date(2020, 2, 2), slot="08:00-10:00")
    state = given(ORDERED, missed)
    [event] = decide_reading(state, reading(when=at(2, 11)), SLOTS, ZONE, NOW)
    assert isinstance(event, TemperatureRecorded) and event.late is True
    state = evolve(state, event, 3)
    assert decide_reading(state, reading(when=at(2, 11)), SLOTS, ZONE, NOW) == []
    with pytest.raises(DomainError) as info:
        decide_reading(state, reading(when=at(2, 11), celsius=38.0), SLOTS, ZONE, NOW)
    assert info.value.refusal is Refusal.CONFLICT and info.value.field == "id"


# -- misses ----------------------------------------------------------------------------------


def test_due_slots_are_whole_windows_inside_the_watch_without_a_reading() -> None:
    # watched from 1 Feb 07:00: the 1st's two slots, the 2nd's morning one has a reading
    state = given(
        ORDERED,
        TemperatureRecorded(
            reading_id="r",
            subject_id=P,
            celsius=36.5,
            slot_day=date(2020, 2, 2),
            slot="08:00-10:00",
            recorded_by="m",
        ),
    )
    due = follow_ups_due(state, SLOTS, ZONE, at(1, 0), at(2, 18))
    assert [(r.day.day, r.label) for r in due] == [
        (1, "08:00-10:00"),
        (1, "16:00-18:00"),
        (2, "16:00-18:00"),
    ]
    # a watch starting mid-window is first due at the next slot; a released one owes nothing
    mid = given(ObservationStarted(subject_id=P, starts_at=at(1, 9)))
    assert [
        (r.day.day, r.label) for r in follow_ups_due(mid, SLOTS, ZONE, at(1, 0), at(1, 23))
    ] == [(1, "16:00-18:00")]
    assert follow_ups_due(STATES["released"], SLOTS, ZONE, at(3, 12), at(9, 0)) == []


def test_a_miss_is_decided_once_and_never_after_a_reading() -> None:
    ref = SlotRef(date(2020, 2, 1), SLOTS[0])
    state = STATES["quarantined"]
    assert follow_ups_missed(state, SLOTS, ZONE, at(1, 0), at(1, 9)) == []  # not closed yet
    [miss] = follow_ups_missed(state, SLOTS, ZONE, at(1, 0), at(1, 10))
    assert miss == Miss(
        at(1, 10),
        FollowUpMissed(subject_id=P, slot_day=date(2020, 2, 1), slot="08:00-10:00"),
        opened_by=1,  # the order that opened the quarantine
    )
    assert follow_ups_missed(evolve(state, miss.event, 2), SLOTS, ZONE, at(1, 0), at(1, 10)) == []
    read = evolve(
        state,
        TemperatureRecorded(
            reading_id="r",
            subject_id=P,
            celsius=36.5,
            slot_day=ref.day,
            slot=ref.label,
            recorded_by="m",
        ),
        2,
    )
    assert (ref.day, ref.label) not in {
        (m.event.slot_day, m.event.slot)  # type: ignore[attr-defined]
        for m in follow_ups_missed(read, SLOTS, ZONE, at(1, 0), at(5, 0))
    }


def test_a_backlog_is_settled_oldest_first_a_bounded_number_at_a_time() -> None:
    # given a watch four days behind: eight follow-ups missed
    owed = follow_ups_missed(STATES["quarantined"], SLOTS, ZONE, at(1, 0), at(5, 0))
    assert len(owed) == 8
    # when a pass may settle three, then it takes the three oldest
    assert first_misses(reversed(owed), 3) == owed[:3]
    assert first_misses(owed, 100) == owed
    # windows closing at one instant are settled together, never split
    tied = [Miss(at(1, 10), e.event) for e in owed[:2]] + [Miss(at(1, 18), owed[2].event)]
    assert first_misses(tied, 1) == tied[:2]
    assert first_misses(tied, 2) == tied[:2]
    assert first_misses(tied, 3) == tied


# -- care plans ------------------------------------------------------------------------------


def task(tid: str, kind: str, when: datetime, target: str = P) -> CompleteTask:
    return CompleteTask(tid, target, kind, when, "worker-1")  # type: ignore[arg-type]


def test_configured_plans_are_checked() -> None:
    assert PLANS["home"]["disinfection"] == parse_slots(
        ["07:00-09:00", "12:00-14:00", "18:00-20:00"]
    )
    assert "temperature" not in PLANS["home"]  # the follow-up slots, not a second copy
    for bad in (
        {"hotel": {"call": ["08:00-20:00"]}},
        {"home": {"shopping": ["08:00-20:00"]}},
        {"home": {"call": ["20:00-08:00"]}},
    ):
        with pytest.raises(ValueError):
            parse_plans(bad)


@pytest.mark.parametrize(
    ("state", "cmd", "slot", "late"),
    [
        ("quarantined", task("t1", "disinfection", at(2, 12, 30)), "12:00-14:00", False),
        ("quarantined", task("t1", "disinfection", at(2, 15)), "12:00-14:00", False),
        ("quarantined", task("t1", "supplies", at(2, 10)), "09:00-18:00", False),
        # services with no plan count for the whole day, for anyone
        ("quarantined", task("t1", "shopping", at(2, 6)), "00:00-24:00", False),
        ("none", task("t1", "counselling", at(2, 6)), "00:00-24:00", False),
        ("none", task("t1", "call", at(2, 6)), "00:00-24:00", False),
        ("under_observation", task("t1", "call", at(2, 9)), "08:00-20:00", False),
    ],
)
def test_a_care_task_counts_for_its_plan_window(
    state: str, cmd: CompleteTask, slot: str, late: bool
) -> None:
    [event] = decide_subject_task(STATES[state], cmd, PLANS, ZONE, NOW)
    assert isinstance(event, CareTaskCompleted)
    assert (event.slot_day, event.slot, event.late) == (cmd.occurred_at.date(), slot, late)


def test_a_planned_task_before_its_first_window_is_refused() -> None:
    with pytest.raises(DomainError) as info:
        decide_subject_task(
            STATES["quarantined"], task("t", "disinfection", at(2, 6)), PLANS, ZONE, NOW
        )
    assert info.value.field == "occurred_at"


def test_care_windows_closed_undone_are_missed_once_and_a_late_task_is_marked_late() -> None:
    state = STATES["quarantined"]  # home quarantine from 1 Feb 07:00
    due = subject_care_due(state, PLANS, ZONE, at(1, 0), at(1, 23))
    assert [(t, r.label) for t, r in due] == [
        ("disinfection", "07:00-09:00"),
        ("disinfection", "12:00-14:00"),
        ("supplies", "09:00-18:00"),
        ("call", "08:00-20:00"),
        ("disinfection", "18:00-20:00"),
        ("garbage", "17:00-21:00"),
    ]
    [garbage] = decide_subject_task(state, task("t1", "garbage", at(1, 20)), PLANS, ZONE, NOW)
    done = evolve(state, garbage, 2)

    def garbage_missed(state: Watch) -> list[EventPayload]:
        misses = subject_care_missed(state, PLANS, ZONE, at(1, 0), at(1, 23))
        return [m.event for m in misses if m.event.task == "garbage"]  # type: ignore[attr-defined]

    assert garbage_missed(done) == []
    [miss] = garbage_missed(state)
    assert miss == CareTaskMissed(
        target_id=P,
        task="garbage",
        slot_day=date(2020, 2, 1),
        slot="17:00-21:00",
        party_id="doctor-li",
    )
    missed = evolve(state, miss, 2)
    assert garbage_missed(missed) == []
    [late] = decide_subject_task(missed, task("t2", "garbage", at(1, 22)), PLANS, ZONE, NOW)
    assert isinstance(late, CareTaskCompleted) and late.late is True


def test_a_centralized_site_has_its_own_plan() -> None:
    [moved] = decide_transfer(STATES["quarantined"], "q1", "centralized", "隔离酒店", at(2, 0))
    state = evolve(STATES["quarantined"], moved, 2)
    due = subject_care_due(state, PLANS, ZONE, at(2, 0), at(2, 23))
    assert [(t, r.label) for t, r in due] == [("call", "08:00-20:00")]


# -- public places ---------------------------------------------------------------------------


def place(*events: EventPayload) -> PlaceCare:
    state = care.PLACE_EMPTY
    for version, e in enumerate(events, start=1):
        state = evolve_place(state, e, version)
    return state


THREE = parse_slots(["07:00-11:40", "11:40-16:20", "16:20-21:00"])
PLAN = PlaceCarePlanned(
    node_id="stairs",
    task="disinfection",
    times_per_day=3,
    slots=[s.label for s in THREE],
    party_id="property-co",
    effective_from=at(1, 6),
)


def test_a_place_plan_is_set_changed_and_ended() -> None:
    cmd = SetPlacePlan("stairs", "disinfection", THREE, "property-co", at(1, 6))
    assert decide_place_plan(place(), cmd) == [PLAN]
    assert decide_place_plan(place(PLAN), cmd) == []  # the same plan again
    ended = SetPlacePlan("stairs", "disinfection", (), "property-co", at(3, 6))
    [stop] = decide_place_plan(place(PLAN), ended)
    assert place(PLAN, stop).current("disinfection") is None
    with pytest.raises(DomainError) as info:
        decide_place_plan(place(), SetPlacePlan("stairs", "call", THREE, None, at(1, 6)))
    assert info.value.field == "task"


def test_a_place_misses_windows_closed_undone_while_the_plan_is_in_force() -> None:
    stop = PlaceCarePlanned(
        node_id="stairs", task="disinfection", times_per_day=0, slots=[], effective_from=at(2, 12)
    )
    done = decide_place_task(place(PLAN), task("d1", "disinfection", at(1, 8), "stairs"), ZONE, NOW)
    state = place(PLAN, *done, stop)
    due = place_care_due(state, ZONE, at(1, 0), at(5, 0))
    assert [(r.day.day, r.label) for _, r in due] == [
        (1, "11:40-16:20"),
        (1, "16:20-21:00"),
        (2, "07:00-11:40"),
    ]
    miss = place_care_missed(state, ZONE, at(1, 0), at(5, 0))[0].event
    assert isinstance(miss, CareTaskMissed) and miss.party_id == "property-co"
    assert miss.target_id == "stairs"


def test_a_miss_names_the_event_that_opened_its_watch_or_plan() -> None:
    """Given an observation (v1) turned into a quarantine (v2) and a place plan (v1), each
    miss is caused by the event whose period or plan its window opened in."""
    moved = QuarantineOrdered(**{**ORDERED.model_dump(), "starts_at": at(2, 7)})
    state = given(OBSERVED, moved)
    misses = follow_ups_missed(state, SLOTS, ZONE, at(1, 0), at(2, 23))
    assert [(m.closed_at, m.opened_by) for m in misses] == [
        (at(1, 10), 1),
        (at(1, 18), 1),
        (at(2, 10), 2),
        (at(2, 18), 2),
    ]
    plans = {"home": {"call": parse_slots(["12:00-13:00"])}}
    assert {m.opened_by for m in subject_care_missed(state, plans, ZONE, at(2, 0), at(3, 0))} == {2}
    assert {m.opened_by for m in place_care_missed(place(PLAN), ZONE, at(1, 0), at(2, 0))} == {1}
