"""Daily reports (疫情防控日报告) and zero reports (零报告). Pure decide/evolve.

Every reporting node sends one report a day by the deadline of its level (grids by 18:00,
communities by 20:00, ...): figures, or an explicit zero report when nothing happened. A later
submission for the same node and day amends it with the next revision; one stream per node
and day (`daily-report:<node_id>:<day>`). Whether a report is late is decided by the server's
clock at submission, never by a time the client sends. Completeness per level tells
`submitted`, `zero`, `late`, `missing` and (before the deadline) `pending` apart: a zero
report is a report, a missing one is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from shared.contracts import EventPayload
from shared.contracts.screening import DailyReportSubmitted
from shared.errors import DomainError, Refusal

REPORT_STREAM = "daily-report"
FIGURE_NAME = re.compile(r"^\S(.{0,62}\S)?$")
MAX_FIGURES = 200
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

Standing = Literal["submitted", "zero", "late", "missing", "pending"]
STANDINGS: tuple[Standing, ...] = ("submitted", "zero", "late", "missing", "pending")


def report_stream(node_id: str, day: date) -> str:
    return f"{REPORT_STREAM}:{node_id}:{day.isoformat()}"


# -- deadlines -------------------------------------------------------------------------------


def parse_hhmm(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def deadline_of(
    kind: str, day: date, deadlines: Mapping[str, str], default: str, zone: ZoneInfo
) -> datetime:
    """When the report of a node of this kind for `day` is due, in the system zone."""
    return datetime.combine(day, parse_hhmm(deadlines.get(kind, default)), tzinfo=zone)


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    report_id: str
    revision: int
    zero: bool
    figures: Mapping[str, int]
    late: bool
    submitted_by: str


@dataclass(frozen=True)
class DailyReport:
    node_id: str
    day: date
    revisions: tuple[Revision, ...]
    version: int

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    @property
    def late(self) -> bool:
        """A node is late when its first report came after the deadline; amending an
        on-time report later does not make it late."""
        return self.revisions[0].late


@dataclass(frozen=True)
class SubmitReport:
    report_id: str
    node_id: str
    day: date
    zero: bool
    figures: Mapping[str, int]
    submitted_by: str
    submitted_at: datetime  # the server's clock, never the client's
    deadline: datetime
    today: date  # the server's day in the system zone


def check_figures(zero: bool, figures: Mapping[str, int]) -> dict[str, int]:
    if len(figures) > MAX_FIGURES:
        raise DomainError("too-many-figures", f"at most {MAX_FIGURES} figures", field="figures")
    for name, value in figures.items():
        if not FIGURE_NAME.match(name):
            raise DomainError(
                "bad-figure-name",
                f"figure name {name[:20]!r} must be 1-64 characters without outer spaces",
                field="figures",
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DomainError(
                "bad-figure", f"figure {name} must be a whole number ≥ 0", field="figures"
            )
    if zero and any(figures.values()):
        raise DomainError(
            "zero-with-figures",
            "a zero report (零报告) cannot carry non-zero figures",
            field="figures",
        )
    if not zero and not figures:
        raise DomainError(
            "no-figures",
            "a report without figures is a zero report: send zero=true",
            field="figures",
        )
    return dict(sorted(figures.items()))


def decide_submit(
    state: DailyReport | None, cmd: SubmitReport, id_used_elsewhere: bool = False
) -> list[EventPayload]:
    """The first report of a node and day is revision 1; each amendment the next one. The
    same report sent again changes nothing; a report id reused for other content, or for
    another node or day, is a conflict."""
    if not CLIENT_ID.match(cmd.report_id):
        raise DomainError(
            "invalid-id", "id must be 1-100 letters, digits, dashes or underscores", field="id"
        )
    figures = check_figures(cmd.zero, cmd.figures)
    if state is not None:
        for rev in state.revisions:
            if rev.report_id == cmd.report_id:
                if (rev.zero, dict(rev.figures), rev.submitted_by) == (
                    cmd.zero,
                    figures,
                    cmd.submitted_by,
                ):
                    return []
                raise DomainError(
                    "report-exists",
                    f"report {cmd.report_id} was already submitted with other content;"
                    " send an amendment with a new id",
                    refusal=Refusal.CONFLICT,
                    field="id",
                )
    if id_used_elsewhere:
        raise DomainError(
            "report-exists",
            f"report {cmd.report_id} belongs to another node or day",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if cmd.day > cmd.today:
        raise DomainError("day-in-future", f"day {cmd.day} has not begun yet", field="day")
    if state is not None and (state.latest.zero, dict(state.latest.figures)) == (
        cmd.zero,
        figures,
    ):
        return []  # an amendment that changes nothing records nothing
    return [
        DailyReportSubmitted(
            report_id=cmd.report_id,
            node_id=cmd.node_id,
            day=cmd.day,
            revision=state.latest.revision + 1 if state is not None else 1,
            zero=cmd.zero,
            figures=figures,
            late=cmd.submitted_at > cmd.deadline,
            submitted_by=cmd.submitted_by,
        )
    ]


def evolve_report(
    state: DailyReport | None, event: EventPayload, version: int
) -> DailyReport | None:
    if not isinstance(event, DailyReportSubmitted):
        return replace(state, version=version) if state is not None else None
    revision = Revision(
        event.report_id,
        event.revision,
        event.zero,
        dict(event.figures),
        event.late,
        event.submitted_by,
    )
    if state is None:
        return DailyReport(event.node_id, event.day, (revision,), version)
    return replace(state, revisions=(*state.revisions, revision), version=version)


# -- completeness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a node reported for a day (its latest revision, and whether it was late)."""

    zero: bool
    late: bool


def standing(seen: Seen | None, deadline: datetime, now: datetime) -> Standing:
    """A node's standing for a day: a late report is late whether zero or with figures; no
    report is `pending` until the deadline passes, then `missing`."""
    if seen is None:
        return "pending" if now <= deadline else "missing"
    if seen.late:
        return "late"
    return "zero" if seen.zero else "submitted"


def tally(standings: list[Standing]) -> dict[str, int]:
    counts: dict[str, int] = {s: 0 for s in STANDINGS}
    for s in standings:
        counts[s] += 1
    return {
        **counts,
        "total": len(standings),
        "reported": len(standings) - counts["missing"] - counts["pending"],
    }
