"""Daily-report commands and queries; `daily_reports` (latest revision per node and day) and
`daily_report_revisions` are kept current in each command's transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.screening.domain import reports as domain
from services.screening.domain.reports import DailyReport, Seen, Standing, SubmitReport
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.envelope import Envelope
from shared.eventstore import CommandContext

REPORT: Aggregate[DailyReport | None] = Aggregate(domain.REPORT_STREAM, None, domain.evolve_report)


@dataclass(frozen=True)
class Deadlines:
    """The reporting deadline (HH:MM) per node kind, in the system zone."""

    by_kind: Mapping[str, str]
    default: str
    zone: ZoneInfo

    def of(self, kind: str, day: date) -> datetime:
        return domain.deadline_of(kind, day, self.by_kind, self.default, self.zone)


async def node_kind(conn: Any, node_id: str) -> str | None:
    value = await conn.fetchval("SELECT kind FROM places WHERE id = $1", node_id)
    return str(value) if value is not None else None


async def project_reports(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        if env.type != "DailyReportSubmitted":
            continue
        d = env.data
        day = date.fromisoformat(d["day"])
        await conn.execute(
            "INSERT INTO daily_report_revisions (report_id, node_id, day, revision, zero,"
            " figures, late, submitted_by, submitted_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            d["report_id"],
            d["node_id"],
            day,
            d["revision"],
            d["zero"],
            d["figures"],
            d["late"],
            d["submitted_by"],
            env.occurred_at,
        )
        await conn.execute(
            """
            INSERT INTO daily_reports (node_id, day, report_id, revision, zero, figures, late,
                first_late, submitted_by, submitted_at, first_submitted_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $9)
            ON CONFLICT (node_id, day) DO UPDATE SET
                report_id = EXCLUDED.report_id, revision = EXCLUDED.revision,
                zero = EXCLUDED.zero, figures = EXCLUDED.figures, late = EXCLUDED.late,
                submitted_by = EXCLUDED.submitted_by, submitted_at = EXCLUDED.submitted_at
            WHERE daily_reports.revision < EXCLUDED.revision
            """,
            d["node_id"],
            day,
            d["report_id"],
            d["revision"],
            d["zero"],
            d["figures"],
            d["late"],
            d["submitted_by"],
            env.occurred_at,
        )


async def submit_report(
    pool: Any,
    cmd: SubmitReport,
    ctx: CommandContext,
    expected: int | None = None,
) -> Outcome[DailyReport | None]:
    """Submit or amend a node's report for a day; `cmd.submitted_at` is the server's clock
    and `cmd.deadline` the node's deadline that day."""

    async def prepare(conn: Any) -> Callable[[DailyReport | None], list[EventPayload]]:
        holder = await conn.fetchrow(
            "SELECT node_id, day FROM daily_report_revisions WHERE report_id = $1", cmd.report_id
        )
        elsewhere = holder is not None and (holder["node_id"], holder["day"]) != (
            cmd.node_id,
            cmd.day,
        )
        return lambda state: domain.decide_submit(state, cmd, elsewhere)

    return await execute(
        pool,
        REPORT,
        domain.report_stream(cmd.node_id, cmd.day),
        prepare=prepare,
        ctx=ctx,
        occurred_at=cmd.submitted_at,
        node_id=cmd.node_id,
        expected_version=expected,
        project=project_reports,
    )


REPORT_COLUMNS = (
    "report_id AS id, node_id, day, revision, zero, figures, late, submitted_by, submitted_at"
)


async def get_report(
    conn: Any, node_id: str, day: date, revision: int | None = None
) -> dict[str, Any] | None:
    """The latest revision of a node's report for a day, or the one asked for."""
    latest = await conn.fetchrow(
        "SELECT revision, first_late FROM daily_reports WHERE node_id = $1 AND day = $2",
        node_id,
        day,
    )
    if latest is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {REPORT_COLUMNS} FROM daily_report_revisions"
        " WHERE node_id = $1 AND day = $2 AND revision = $3",
        node_id,
        day,
        revision if revision is not None else latest["revision"],
    )
    if row is None:
        return None
    return {**dict(row), "first_late": latest["first_late"]}


@dataclass(frozen=True)
class Completeness:
    deadline: datetime
    counts: dict[str, int]
    items: list[dict[str, Any]]


async def completeness(
    conn: Any, node_id: str, day: date, kind: str, deadlines: Deadlines, now: datetime
) -> Completeness:
    """Every active node of `kind` under `node_id` (itself included) and where its report
    for `day` stands."""
    rows = await conn.fetch(
        """
        SELECT p.id AS node_id, p.name, p.path::text AS path, r.zero, r.first_late,
               r.revision, r.figures, r.submitted_at
        FROM places root JOIN places p ON p.path <@ root.path
        LEFT JOIN daily_reports r ON r.node_id = p.id AND r.day = $2
        WHERE root.id = $1 AND p.kind = $3 AND NOT p.retired
        ORDER BY p.path
        """,
        node_id,
        day,
        kind,
    )
    deadline = deadlines.of(kind, day)
    items: list[dict[str, Any]] = []
    standings: list[Standing] = []
    for r in rows:
        reported = r["revision"] is not None
        status = domain.standing(
            Seen(r["zero"], r["first_late"]) if reported else None, deadline, now
        )
        standings.append(status)
        items.append(
            {
                "node_id": r["node_id"],
                "name": r["name"],
                "path": r["path"],
                "status": status,
                "zero": r["zero"],
                "late": r["first_late"],
                "revision": r["revision"],
                "figures": r["figures"],
                "submitted_at": r["submitted_at"],
            }
        )
    return Completeness(deadline, domain.tally(standings), items)
