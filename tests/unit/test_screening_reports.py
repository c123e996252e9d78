"""Daily reports and zero reports, as given / when / then."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.screening.domain.reports import (
    DailyReport,
    Seen,
    SubmitReport,
    deadline_of,
    decide_submit,
    evolve_report,
    report_stream,
    standing,
    tally,
)
from shared.contracts.screening import DailyReportSubmitted
from shared.errors import DomainError, Refusal

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2020, 2, 1)
DEADLINES = {"grid": "18:00", "community": "20:00"}
GRID_DEADLINE = datetime(2020, 2, 1, 18, 0, tzinfo=SHANGHAI)


def submit(**changes: object) -> SubmitReport:
    base = SubmitReport(
        report_id="r1",
        node_id="g1",
        day=DAY,
        zero=False,
        figures={"入户排查户数": 126, "湖北返乡人员": 2},
        submitted_by="worker-1",
        submitted_at=datetime(2020, 2, 1, 17, 30, tzinfo=SHANGHAI),
        deadline=GRID_DEADLINE,
        today=DAY,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def after(*cmds: SubmitReport) -> DailyReport | None:
    state: DailyReport | None = None
    for cmd in cmds:
        for event in decide_submit(state, cmd):
            state = evolve_report(state, event, (state.version if state else 0) + 1)
    return state


def test_deadlines_follow_the_level_in_the_system_zone() -> None:
    assert deadline_of("grid", DAY, DEADLINES, "22:00", SHANGHAI) == GRID_DEADLINE
    assert deadline_of("community", DAY, DEADLINES, "22:00", SHANGHAI).hour == 20
    assert deadline_of("village", DAY, DEADLINES, "22:00", SHANGHAI) == datetime(
        2020, 2, 1, 22, 0, tzinfo=SHANGHAI
    )


def test_the_first_report_of_a_day_is_revision_one() -> None:
    assert decide_submit(None, submit()) == [
        DailyReportSubmitted(
            report_id="r1",
            node_id="g1",
            day=DAY,
            revision=1,
            zero=False,
            figures={"入户排查户数": 126, "湖北返乡人员": 2},
            late=False,
            submitted_by="worker-1",
        )
    ]
    assert report_stream("g1", DAY) == "daily-report:g1:2020-02-01"


@pytest.mark.parametrize(
    ("submitted_at", "late"),
    [
        (datetime(2020, 2, 1, 17, 59, tzinfo=SHANGHAI), False),
        (datetime(2020, 2, 1, 18, 0, tzinfo=SHANGHAI), False),  # on the stroke is on time
        (datetime(2020, 2, 1, 18, 1, tzinfo=SHANGHAI), True),
        # 10:30 UTC is 18:30 in Shanghai: the zone decides, not the clock's own offset
        (datetime(2020, 2, 1, 10, 30, tzinfo=ZoneInfo("UTC")), True),
        (datetime(2020, 2, 2, 9, 0, tzinfo=SHANGHAI), True),  # the next morning
    ],
)
def test_late_is_decided_by_the_servers_submission_time(submitted_at: datetime, late: bool) -> None:
    [event] = decide_submit(None, submit(submitted_at=submitted_at))
    assert isinstance(event, DailyReportSubmitted) and event.late is late


def test_a_zero_report_is_a_report_with_no_figures_or_only_zeros() -> None:
    for figures in ({}, {"发热人员": 0}):
        [event] = decide_submit(None, submit(zero=True, figures=figures))
        assert isinstance(event, DailyReportSubmitted) and event.zero


@pytest.mark.parametrize(
    ("cmd", "code", "field"),
    [
        (submit(zero=True, figures={"发热人员": 1}), "zero-with-figures", "figures"),
        (submit(zero=False, figures={}), "no-figures", "figures"),
        (submit(figures={"发热人员": -1}), "bad-figure", "figures"),
        (submit(figures={" ": 1}), "bad-figure-name", "figures"),
        (submit(day=DAY + timedelta(days=1)), "day-in-future", "day"),
        (submit(report_id="bad id"), "invalid-id", "id"),
    ],
)
def test_invalid_reports_are_refused_naming_the_field(
    cmd: SubmitReport, code: str, field: str
) -> None:
    with pytest.raises(DomainError) as info:
        decide_submit(None, cmd)
    assert (info.value.code, info.value.field, info.value.refusal) == (
        code,
        field,
        Refusal.INVALID,
    )


def test_an_amendment_is_the_next_revision_and_keeps_the_first_lateness() -> None:
    first = after(submit())
    [event] = decide_submit(
        first,
        submit(
            report_id="r2",
            figures={"入户排查户数": 130, "湖北返乡人员": 2},
            submitted_at=datetime(2020, 2, 1, 21, 0, tzinfo=SHANGHAI),
        ),
    )
    assert isinstance(event, DailyReportSubmitted)
    assert (event.revision, event.late) == (2, True)
    amended = evolve_report(first, event, 2)
    assert amended is not None and amended.latest.revision == 2
    assert amended.late is False  # the node reported on time; the correction came later


def test_the_same_report_sent_again_changes_nothing() -> None:
    state = after(submit())
    assert decide_submit(state, submit()) == []
    # a new id with the very same content records nothing either
    assert decide_submit(state, submit(report_id="r2")) == []


@pytest.mark.parametrize(
    ("cmd", "elsewhere"),
    [(submit(zero=True, figures={}), False), (submit(report_id="r9"), True)],
)
def test_a_report_id_reused_for_other_content_is_a_conflict(
    cmd: SubmitReport, elsewhere: bool
) -> None:
    with pytest.raises(DomainError) as info:
        decide_submit(after(submit()) if not elsewhere else None, cmd, elsewhere)
    assert info.value.refusal is Refusal.CONFLICT and info.value.field == "id"


@pytest.mark.parametrize(
    ("seen", "now", "expected"),
    [
        (Seen(zero=False, late=False), GRID_DEADLINE, "submitted"),
        (Seen(zero=True, late=False), GRID_DEADLINE, "zero"),
        (Seen(zero=True, late=True), GRID_DEADLINE, "late"),
        (Seen(zero=False, late=True), GRID_DEADLINE, "late"),
        (None, GRID_DEADLINE - timedelta(hours=1), "pending"),
        (None, GRID_DEADLINE, "pending"),
        (None, GRID_DEADLINE + timedelta(minutes=1), "missing"),
    ],
)
def test_completeness_never_confuses_zero_with_missing(
    seen: Seen | None, now: datetime, expected: str
) -> None:
    assert standing(seen, GRID_DEADLINE, now) == expected


def test_the_tally_counts_every_standing_and_what_was_reported() -> None:
    assert tally(["submitted", "zero", "zero", "late", "missing", "pending"]) == {
        "submitted": 1,
        "zero": 2,
        "late": 1,
        "missing": 1,
        "pending": 1,
        "reported": 4,
        "total": 6,
    }
