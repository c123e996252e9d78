"""Checkpoints, policies over time, duty shifts and coverage, what the views say at a moment,
the crossing record and the register, as given / when / then."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.checkpoint.domain import checkpoints, crossings, ledger, shifts
from services.checkpoint.domain.checkpoints import (
    Checkpoint,
    OpenCheckpoint,
    PolicyPeriod,
    policy_at,
)
from services.checkpoint.domain.crossings import GatePerson, RecordCrossing
from services.checkpoint.domain.decisions import Judgement
from services.checkpoint.domain.exposure import (
    RiskArea,
    WatchPeriod,
    from_risk_area,
    origin_unresolved,
    views_as_of,
    watch_state,
)
from services.checkpoint.domain.shifts import Interval, ScheduleShift, Shift, coverage
from shared import divisions
from shared.contracts.checkpoint import (
    CheckpointClosed,
    CheckpointOpened,
    CheckpointPolicy,
    CheckpointPolicyChanged,
    CrossingRecorded,
    DutyShiftScheduled,
    QuarantineBreachAttempted,
)
from shared.errors import DomainError, Refusal

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2020, 2, 5, 0, 0, tzinfo=SHANGHAI)
GREEN = CheckpointPolicy()
CLOSED = CheckpointPolicy(residents_only=True, test_report_max_hours=48)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# -- checkpoints and policies ----------------------------------------------------------------

GATE = Checkpoint("gwm-east", "gwm", "东卡口", "township", GREEN, False, 1)


def open_cmd(**changes: object) -> OpenCheckpoint:
    values: dict[str, object] = {
        "checkpoint_id": "gwm-east",
        "node_id": "gwm",
        "name": "东卡口",
        "level": "township",
        "policy": GREEN,
        "node_known": True,
    }
    values.update(changes)
    return OpenCheckpoint(**values)  # type: ignore[arg-type]


def test_a_gate_opens_on_a_known_place_and_opening_it_again_changes_nothing() -> None:
    assert checkpoints.decide_open(None, open_cmd()) == [
        CheckpointOpened(
            checkpoint_id="gwm-east", node_id="gwm", name="东卡口", level="township", policy=GREEN
        )
    ]
    assert checkpoints.decide_open(GATE, open_cmd()) == []
    with pytest.raises(DomainError) as info:
        checkpoints.decide_open(GATE, open_cmd(node_id="elsewhere"))
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (open_cmd(node_known=False), "node_id"),
        (open_cmd(name="  "), "name"),
        (open_cmd(checkpoint_id="no spaces"), "id"),
        (
            open_cmd(policy=CheckpointPolicy(temperature_threshold=30)),
            "policy.temperature_threshold",
        ),
        (open_cmd(policy=CheckpointPolicy(health_code_colours=[])), "policy.health_code_colours"),
    ],
)
def test_a_gate_that_cannot_open_is_refused_naming_the_field(
    cmd: OpenCheckpoint, field: str
) -> None:
    with pytest.raises(DomainError) as info:
        checkpoints.decide_open(None, cmd)
    assert info.value.field == field


def test_a_policy_names_its_colours_and_residency_types_once_in_a_fixed_order() -> None:
    policy = CheckpointPolicy(
        health_code_colours=["yellow", "green", "yellow"],
        resident_types=["temporary", "resident", "temporary"],
    )
    checked = checkpoints.check_policy(policy)
    assert checked.health_code_colours == ["green", "yellow"]
    assert checked.resident_types == ["resident", "temporary"]
    assert CheckpointPolicy().resident_types == ["resident", "temporary"]


def test_a_policy_changes_from_a_moment_not_before_the_opening() -> None:
    [event] = checkpoints.decide_change_policy(GATE, CLOSED, h(24), h(0), None)
    assert event == CheckpointPolicyChanged(
        checkpoint_id="gwm-east", policy=CLOSED, effective_from=h(24)
    )
    latest = PolicyPeriod(h(24), 2, CLOSED)
    assert checkpoints.decide_change_policy(GATE, CLOSED, h(24), h(0), latest) == []
    with pytest.raises(DomainError) as info:
        checkpoints.decide_change_policy(GATE, CLOSED, h(-1), h(0), None)
    assert info.value.field == "effective_from"


def test_a_closed_gate_takes_no_new_policy_and_closing_twice_is_a_no_op() -> None:
    assert checkpoints.decide_close(GATE, "疫情解除") == [
        CheckpointClosed(checkpoint_id="gwm-east", reason="疫情解除")
    ]
    closed = checkpoints.evolve(GATE, CheckpointClosed(checkpoint_id="gwm-east", reason="x"), 2)
    assert closed is not None and closed.closed
    assert checkpoints.decide_close(closed, "again") == []
    with pytest.raises(DomainError) as info:
        checkpoints.decide_change_policy(closed, CLOSED, h(30), h(0), None)
    assert info.value.refusal is Refusal.CONFLICT


def test_a_crossing_is_judged_by_the_policy_in_force_at_its_time() -> None:
    periods = [PolicyPeriod(h(0), 1, GREEN), PolicyPeriod(h(24), 2, CLOSED)]
    assert policy_at(periods, h(-0.5)) is None  # before the opening
    assert policy_at(periods, h(0)) == GREEN
    assert policy_at(periods, h(23.9)) == GREEN
    assert policy_at(periods, h(24)) == CLOSED
    # a later change that starts at the same moment wins
    again = [*periods, PolicyPeriod(h(24), 3, GREEN)]
    assert policy_at(again, h(25)) == GREEN


# -- duty shifts -----------------------------------------------------------------------------


def schedule(**changes: object) -> ScheduleShift:
    values: dict[str, object] = {
        "shift_id": "s1",
        "checkpoint_id": "gwm-east",
        "sub": "police-li",
        "party_id": None,
        "role": "police",
        "starts_at": h(8),
        "ends_at": h(20),
        "checkpoint_open": True,
        "overlapping": None,
        "max_hours": 24,
    }
    values.update(changes)
    return ScheduleShift(**values)  # type: ignore[arg-type]


def test_a_shift_is_scheduled_once() -> None:
    [event] = shifts.decide_schedule(None, schedule())
    assert isinstance(event, DutyShiftScheduled) and event.role == "police"
    state = shifts.evolve(None, event, 1)
    assert shifts.decide_schedule(state, schedule()) == []
    with pytest.raises(DomainError):
        shifts.decide_schedule(state, schedule(role="health_worker"))


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        (schedule(ends_at=h(8)), "invalid-period"),
        (schedule(ends_at=h(8 + 25)), "shift-too-long"),
        (schedule(checkpoint_open=False), "checkpoint-closed"),
        (schedule(overlapping="s0"), "shift-overlap"),
        (schedule(sub=" "), "sub-empty"),
    ],
)
def test_shifts_that_cannot_be_held_are_refused(cmd: ScheduleShift, code: str) -> None:
    with pytest.raises(DomainError) as info:
        shifts.decide_schedule(None, cmd)
    assert info.value.code == code


def shift(sid: str, role: str, start: float, end: float, *, cancelled: bool = False) -> Shift:
    return Shift(sid, "gwm-east", f"{role}-{sid}", None, role, h(start), h(end), cancelled, 1)  # type: ignore[arg-type]


def test_a_day_of_coverage_shows_the_hours_and_roles_nobody_holds() -> None:
    day = Interval(h(0), h(24))
    roster = [
        shift("a", "police", 0, 12),
        shift("b", "police", 12, 24),
        shift("c", "community_cadre", 6, 20),
        shift("d", "property_guard", 0, 24),
        shift("e", "health_worker", 8, 18, cancelled=True),
    ]
    result = coverage(roster, day, shifts.TEAM)
    assert result.gaps == []
    assert result.missing_roles == ["health_worker"]
    assert result.role_gaps["community_cadre"] == [Interval(h(0), h(6)), Interval(h(20), h(24))]
    assert result.role_gaps["police"] == [] and not result.complete


def test_hours_nobody_holds_are_gaps() -> None:
    result = coverage(
        [shift("a", "police", 2, 10), shift("b", "police", 9, 12)],
        Interval(h(0), h(24)),
        ["police"],
    )
    assert result.gaps == [Interval(h(0), h(2)), Interval(h(12), h(24))]


def test_on_duty_means_holding_a_live_shift_at_that_moment() -> None:
    roster = [shift("a", "police", 8, 20), shift("b", "police", 20, 24, cancelled=True)]
    sub = "police-a"
    assert shifts.on_duty(roster, sub, "gwm-east", h(8))
    assert not shifts.on_duty(roster, sub, "gwm-east", h(20))  # the end is not included
    assert not shifts.on_duty(roster, "police-b", "gwm-east", h(21))  # cancelled
    assert not shifts.on_duty(roster, sub, "other-gate", h(9))


# -- what screening's views say at a moment --------------------------------------------------

WUHAN = RiskArea("wh", "湖北省武汉市", "high", ("4201",), date(2020, 1, 23), None, date(2020, 4, 8))


@pytest.mark.parametrize(
    ("code", "origin", "day", "expected"),
    [
        ("420103", None, date(2020, 2, 5), True),
        ("4201", None, date(2020, 2, 5), True),
        ("4202", None, date(2020, 2, 5), False),
        (None, "湖北省武汉市江汉区", date(2020, 2, 5), True),
        (None, "武汉", date(2020, 2, 5), True),  # a partial name
        (None, "湖北武汉", date(2020, 2, 5), True),
        (None, "江汉区", date(2020, 2, 5), True),
        (None, "湖北省黄石市", date(2020, 2, 5), False),
        (None, "湖北省", date(2020, 2, 5), False),  # the province alone is not the city
        ("420103", None, date(2020, 1, 22), False),  # before it was declared
        ("420103", None, date(2020, 4, 7), True),
        ("420103", None, date(2020, 4, 8), False),  # lifted that day
    ],
)
def test_a_risk_area_origin_matches_by_code_prefix_on_the_crossings_day(
    code: str | None, origin: str | None, day: date, expected: bool
) -> None:
    place = divisions.locate(code, origin)
    assert from_risk_area([WUHAN], place, day) is expected
    assert not origin_unresolved([WUHAN], place, day)


@pytest.mark.parametrize(
    ("origin", "day", "expected"),
    [
        ("鼓楼区", date(2020, 2, 5), True),  # four cities have one
        ("朝阳区", date(2020, 2, 5), True),
        ("火星", date(2020, 2, 5), True),
        ("鼓楼区", date(2020, 4, 8), False),  # no risk area is active: nothing it could be in
        (None, date(2020, 2, 5), False),  # no origin given
    ],
)
def test_an_origin_that_names_no_one_division_is_unresolved_while_risk_areas_are_active(
    origin: str | None, day: date, expected: bool
) -> None:
    place = divisions.locate(None, origin)
    assert origin_unresolved([WUHAN], place, day) is expected
    assert not from_risk_area([WUHAN], place, day)


def test_a_low_risk_area_turns_nobody_back() -> None:
    low = RiskArea("hs", "湖北省黄石市", "low", ("4202",), date(2020, 1, 23), None, None)
    assert not from_risk_area([low], divisions.locate("420202", None), date(2020, 2, 5))
    assert not origin_unresolved([low], divisions.locate(None, "鼓楼区"), date(2020, 2, 5))


def test_a_watch_state_holds_from_its_start_until_its_end() -> None:
    periods = [
        WatchPeriod("p1", "observation", h(0), h(10)),
        WatchPeriod("p1", "quarantine", h(10), None),
        WatchPeriod("h:abc", "quarantine", h(0), h(5)),
    ]
    assert watch_state(periods, ["p1"], h(5)).observed
    assert not watch_state(periods, ["p1"], h(5)).quarantined
    assert watch_state(periods, ["p1"], h(100)).quarantined
    assert watch_state(periods, ["p9", "h:abc"], h(1)).quarantined
    assert not watch_state(periods, ["h:abc"], h(5)).quarantined


def test_a_late_crossing_says_its_residency_was_judged_as_of_now() -> None:
    now = h(48)
    assert views_as_of(h(47.99), now, timedelta(minutes=5)) is None
    assert views_as_of(h(2), now, timedelta(minutes=5)) == now


# -- the crossing record ---------------------------------------------------------------------

ZHANG = GatePerson("resident_id", "f" * 64, "110105********1237", "p1")


def record(**changes: object) -> RecordCrossing:
    values: dict[str, object] = {
        "crossing_id": "c1",
        "checkpoint_id": "gwm-east",
        "node_id": "gwm",
        "kind": "person",
        "direction": "out",
        "person": ZHANG,
        "plate": None,
        "passengers": (),
        "temperature": 36.4,
        "health_code": "green",
        "test_report_at": None,
        "origin": None,
        "origin_region_code": None,
        "occurred_at": h(9),
        "recorded_by": "gatekeeper-1",
    }
    values.update(changes)
    return RecordCrossing(**values)  # type: ignore[arg-type]


def test_a_denied_breach_is_recorded_with_the_crossing_and_a_retry_records_nothing() -> None:
    judgement = Judgement("deny", ("under_quarantine",), ("p1",))
    recorded, breach = crossings.decide_record(record(), judgement, None)
    assert isinstance(recorded, CrossingRecorded)
    assert (recorded.decision, recorded.reasons, recorded.subject_id) == (
        "deny",
        ["under_quarantine"],
        "p1",
    )
    assert "110105199001011237" not in recorded.model_dump_json()
    assert breach == QuarantineBreachAttempted(
        crossing_id="c1", checkpoint_id="gwm-east", subject_id="p1", id_hmac="f" * 64
    )
    state = crossings.evolve(crossings.evolve(None, recorded, 1), breach, 2)
    assert state is not None and state.breaches == ("p1",) and state.version == 2
    crossings.check_retry(state, record())
    with pytest.raises(DomainError) as info:
        crossings.check_retry(state, record(direction="in"))
    assert info.value.refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (record(occurred_at=datetime.now(UTC) + timedelta(hours=1)), "occurred_at"),
        (record(temperature=45.0), "temperature"),
        (record(test_report_at=h(10)), "test_report_at"),
        (record(origin_region_code="42-01"), "origin_region_code"),
        (record(kind="vehicle", person=None, plate=None), "plate"),
    ],
)
def test_readings_no_gate_can_take_are_refused_naming_the_field(
    cmd: RecordCrossing, field: str
) -> None:
    with pytest.raises(DomainError) as info:
        crossings.check_crossing(cmd, datetime.now(UTC), timedelta(minutes=5))
    assert info.value.field == field


def test_plates_are_read_as_the_registry_writes_them() -> None:
    assert crossings.normalise_plate("吉a·123 45") == "吉A12345"
    assert crossings.normalise_plate("吉Ａ１２３４５") == "吉A12345"


def test_the_register_has_chinese_headers_and_masked_numbers_only() -> None:
    text = ledger.to_csv(
        [
            {
                "occurred_at": h(9),
                "direction": "in",
                "kind": "person",
                "document_type": "resident_id",
                "document_masked": "110105********1237",
                "plate": None,
                "passengers": [],
                "temperature": 37.6,
                "health_code": "green",
                "test_report_at": None,
                "origin": "湖北省武汉市",
                "decision": "refer",
                "reasons": ["fever", "risk_area_origin"],
            }
        ],
        SHANGHAI,
    )
    header, line = text.removeprefix("\ufeff").strip().split("\r\n")
    assert header.split(",") == list(ledger.HEADERS)
    assert line.split(",") == [
        "2020-02-05 09:00:00",
        "进",
        "人员",
        "居民身份证",
        "110105********1237",
        "",
        "37.6",
        "绿码",
        "",
        "湖北省武汉市",
        "移交",
        "体温异常、来自风险地区",
    ]
