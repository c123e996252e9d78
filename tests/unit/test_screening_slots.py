"""Follow-up slot arithmetic, as given / when / then tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.screening.domain.slots import (
    Period,
    Slot,
    SlotRef,
    closed_between,
    due_in,
    merge,
    next_close_after,
    parse_slot,
    parse_slots,
    settle_count,
    slot_of,
    split_day,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")  # no daylight saving time
BERLIN = ZoneInfo("Europe/Berlin")  # springs forward 2021-03-28 02:00 -> 03:00
TWICE = parse_slots(["08:00-10:00", "16:00-18:00"])
MORNING, AFTERNOON = TWICE


def sh(day: int, hh: int, mm: int = 0, month: int = 2) -> datetime:
    return datetime(2020, month, day, hh, mm, tzinfo=SHANGHAI)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("08:00-10:00", Slot(480, 600)),
        ("00:00-24:00", Slot(0, 1440)),
        (" 16:30-18:05 ", Slot(990, 1085)),
    ],
)
def test_a_slot_is_parsed_from_its_label(text: str, slot: Slot) -> None:
    assert parse_slot(text) == slot
    assert slot.label == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "8:00-10:00",
        "10:00-08:00",
        "08:00-08:00",
        "22:00-02:00",
        "24:00-24:30",
        "08:60-09:00",
        "23:00-24:01",
        "morning",
    ],
)
def test_malformed_or_midnight_crossing_slots_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_slot(text)


def test_slots_are_sorted_and_must_not_overlap() -> None:
    assert parse_slots(["16:00-18:00", "08:00-10:00"]) == TWICE
    assert parse_slots(["08:00-10:00", "10:00-12:00"]) == (Slot(480, 600), Slot(600, 720))
    with pytest.raises(ValueError, match="overlap"):
        parse_slots(["08:00-10:00", "09:59-12:00"])


# -- attribution -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # inside a window
        (sh(1, 8), SlotRef(date(2020, 2, 1), MORNING)),
        (sh(1, 9, 59), SlotRef(date(2020, 2, 1), MORNING)),
        (sh(1, 17, 30), SlotRef(date(2020, 2, 1), AFTERNOON)),
        # between windows: the slot that opened last that day
        (sh(1, 10), SlotRef(date(2020, 2, 1), MORNING)),
        (sh(1, 13), SlotRef(date(2020, 2, 1), MORNING)),
        (sh(1, 19, 30), SlotRef(date(2020, 2, 1), AFTERNOON)),
        (sh(1, 23, 59), SlotRef(date(2020, 2, 1), AFTERNOON)),
        # before the day's first window: no slot (not yesterday's evening)
        (sh(2, 0, 0), None),
        (sh(2, 7, 59), None),
        # the local day decides, whatever the instant's own offset: 00:30 UTC is 08:30 here
        (datetime(2020, 2, 1, 0, 30, tzinfo=UTC), SlotRef(date(2020, 2, 1), MORNING)),
        # 23:30 UTC on 31 Jan is 07:30 on 1 Feb in Shanghai: before the first window
        (datetime(2020, 1, 31, 23, 30, tzinfo=UTC), None),
        # 16:30 UTC on 1 Feb is 00:30 on 2 Feb: before the first window of the 2nd
        (datetime(2020, 2, 1, 16, 30, tzinfo=UTC), None),
    ],
)
def test_a_time_counts_for_its_window_or_the_last_one_opened_that_day(
    at: datetime, expected: SlotRef | None
) -> None:
    assert slot_of(at, TWICE, SHANGHAI) == expected


def test_a_back_dated_time_counts_for_the_slot_of_its_own_day() -> None:
    three_days_ago = sh(1, 9) - timedelta(days=3)
    assert slot_of(three_days_ago, TWICE, SHANGHAI) == SlotRef(date(2020, 1, 29), MORNING)


def test_a_window_ending_at_midnight_holds_the_last_minute_of_the_day() -> None:
    night = parse_slots(["20:00-24:00"])
    ref = slot_of(sh(1, 23, 59), night, SHANGHAI)
    assert ref == SlotRef(date(2020, 2, 1), night[0])
    assert ref.closes_at(SHANGHAI) == sh(2, 0)
    assert slot_of(sh(2, 0), night, SHANGHAI) is None


# -- closing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "until", "closed"),
    [
        (sh(1, 9), sh(1, 9, 59), []),
        (sh(1, 9), sh(1, 10), [SlotRef(date(2020, 2, 1), MORNING)]),  # end is inclusive
        (sh(1, 10), sh(1, 17), []),  # start is exclusive: the 10:00 close was settled
        (
            sh(1, 9),
            sh(1, 18),
            [SlotRef(date(2020, 2, 1), MORNING), SlotRef(date(2020, 2, 1), AFTERNOON)],
        ),
        # across midnight and several days (a scheduler that was down catches up)
        (
            sh(1, 17),
            sh(3, 9),
            [
                SlotRef(date(2020, 2, 1), AFTERNOON),
                SlotRef(date(2020, 2, 2), MORNING),
                SlotRef(date(2020, 2, 2), AFTERNOON),
            ],
        ),
        (sh(1, 12), sh(1, 12), []),
        (sh(1, 12), sh(1, 11), []),
    ],
)
def test_slots_closed_in_a_half_open_interval(
    after: datetime, until: datetime, closed: list[SlotRef]
) -> None:
    assert closed_between(after, until, TWICE, SHANGHAI) == closed


def test_consecutive_intervals_see_every_closed_slot_exactly_once() -> None:
    edges = [sh(1, 0) + timedelta(minutes=37 * i) for i in range(200)]
    seen = [
        r
        for a, b in zip(edges, edges[1:], strict=False)
        for r in closed_between(a, b, TWICE, SHANGHAI)
    ]
    assert seen == closed_between(edges[0], edges[-1], TWICE, SHANGHAI)
    assert len(seen) == len(set(seen)) == 10


def test_a_midnight_window_closes_on_the_next_day() -> None:
    night = parse_slots(["20:00-24:00"])
    assert closed_between(sh(1, 23), sh(2, 0), night, SHANGHAI) == [
        SlotRef(date(2020, 2, 1), night[0])
    ]


def test_next_close_after() -> None:
    assert next_close_after(sh(1, 9), TWICE, SHANGHAI) == sh(1, 10)
    assert next_close_after(sh(1, 10), TWICE, SHANGHAI) == sh(1, 18)
    assert next_close_after(sh(1, 18), TWICE, SHANGHAI) == sh(2, 10)
    assert next_close_after(sh(1, 18), (), SHANGHAI) is None


@pytest.mark.parametrize(
    ("closes", "limit", "settled"),
    [
        ([10, 18, 34], 5, 3),  # all, when they fit
        ([10, 18, 34], 2, 2),  # the oldest, up to the limit
        ([10, 18, 18, 34], 2, 1),  # never part of the windows closing together
        ([10, 10, 10, 18], 2, 3),  # the first instant whole, even over the limit
        ([], 2, 0),
    ],
)
def test_a_backlog_is_settled_in_bounded_passes(
    closes: list[int], limit: int, settled: int
) -> None:
    instants = [sh(1, 0) + timedelta(hours=h) for h in closes]
    assert settle_count(instants, limit) == settled


def test_windows_follow_the_wall_clock_where_there_is_daylight_saving() -> None:
    spring = date(2021, 3, 28)
    ref = SlotRef(spring, MORNING)
    # 08:00-10:00 local is 06:00-08:00 UTC once summer time began that night
    assert ref.opens_at(BERLIN).astimezone(UTC) == datetime(2021, 3, 28, 6, tzinfo=UTC)
    assert ref.closes_at(BERLIN).astimezone(UTC) == datetime(2021, 3, 28, 8, tzinfo=UTC)
    day_before = SlotRef(spring - timedelta(days=1), MORNING)
    assert day_before.closes_at(BERLIN).astimezone(UTC) == datetime(2021, 3, 27, 9, tzinfo=UTC)
    # a window in the skipped hour still is a real, ordered instant
    skipped = SlotRef(spring, parse_slot("02:00-02:30"))
    assert skipped.opens_at(BERLIN) < skipped.closes_at(BERLIN)
    start = datetime(2021, 3, 27, 12, tzinfo=UTC)
    assert len(closed_between(start, start + timedelta(days=2), TWICE, BERLIN)) == 4


# -- due -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "ref", "due"),
    [
        (Period(sh(1, 8)), SlotRef(date(2020, 2, 1), MORNING), True),
        (Period(sh(1, 8, 1)), SlotRef(date(2020, 2, 1), MORNING), False),  # began mid-window
        (Period(sh(1, 9)), SlotRef(date(2020, 2, 1), AFTERNOON), True),
        (Period(sh(1, 7), sh(1, 17)), SlotRef(date(2020, 2, 1), AFTERNOON), False),  # ended
        (Period(sh(1, 7), sh(1, 18)), SlotRef(date(2020, 2, 1), AFTERNOON), True),
        (Period(sh(3, 7)), SlotRef(date(2020, 2, 1), AFTERNOON), False),  # not yet
    ],
)
def test_a_slot_is_due_only_when_the_whole_window_is_inside_the_watch(
    period: Period, ref: SlotRef, due: bool
) -> None:
    assert due_in([period], ref, SHANGHAI) is due


def test_touching_periods_merge_into_one() -> None:
    observation = Period(sh(1, 7), sh(1, 9))
    quarantine = Period(sh(1, 9))
    assert merge([quarantine, observation]) == [Period(sh(1, 7))]
    assert due_in(merge([observation, quarantine]), SlotRef(date(2020, 2, 1), MORNING), SHANGHAI)
    apart = [Period(sh(1, 7), sh(1, 9)), Period(sh(2, 7), sh(2, 9))]
    assert merge(apart) == apart


@pytest.mark.parametrize(
    ("times", "labels"),
    [
        (1, ["07:00-21:00"]),
        (3, ["07:00-11:40", "11:40-16:20", "16:20-21:00"]),
        (0, []),
    ],
)
def test_a_place_plan_splits_the_day_evenly(times: int, labels: list[str]) -> None:
    assert [s.label for s in split_day(parse_slot("07:00-21:00"), times)] == labels
