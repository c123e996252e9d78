"""Duty shift commands and queries; `duty_shifts` is kept current in each command's
transaction. One person holds one shift at a time: scheduling takes an advisory lock on the
person's `sub` (a lock is not a write, so the append stays the transaction's first write)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.checkpoint.domain import shifts as domain
from services.checkpoint.domain.shifts import ScheduleShift, Shift
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.envelope import Envelope
from shared.eventstore import CommandContext

SHIFT: Aggregate[Shift | None] = Aggregate(domain.SHIFT_STREAM, None, domain.evolve)
Decision = Callable[[Shift | None], list[EventPayload]]

SHIFT_COLUMNS = (
    "id, checkpoint_id, sub, party_id, role, starts_at, ends_at, cancelled, cancel_reason, version"
)


def shift_of(row: Any) -> Shift:
    return Shift(
        row["id"],
        row["checkpoint_id"],
        row["sub"],
        row["party_id"],
        row["role"],
        row["starts_at"],
        row["ends_at"],
        row["cancelled"],
        row["version"],
    )


async def project_shifts(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        if env.type == "DutyShiftScheduled":
            await conn.execute(
                f"INSERT INTO duty_shifts ({SHIFT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, false, NULL, $8)",
                d["shift_id"],
                d["checkpoint_id"],
                d["sub"],
                d["party_id"],
                d["role"],
                datetime.fromisoformat(d["starts_at"]),
                datetime.fromisoformat(d["ends_at"]),
                env.version,
            )
        elif env.type == "DutyShiftCancelled":
            await conn.execute(
                "UPDATE duty_shifts SET cancelled = true, cancel_reason = $2, version = $3"
                " WHERE id = $1",
                d["shift_id"],
                d["reason"],
                env.version,
            )


async def schedule_shift(
    pool: Any,
    cmd: ScheduleShift,
    node_id: str,
    now: datetime,
    ctx: CommandContext,
) -> Outcome[Shift | None]:
    """`cmd.checkpoint_open` and `cmd.overlapping` are looked up here, under the lock."""

    async def prepare(conn: Any) -> Decision:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('duty-shift:' || $1, 0))",
            cmd.sub,
        )
        closed = await conn.fetchval(
            "SELECT closed_at IS NOT NULL FROM checkpoints WHERE id = $1", cmd.checkpoint_id
        )
        overlapping = await conn.fetchval(
            "SELECT id FROM duty_shifts WHERE sub = $1 AND NOT cancelled AND id <> $2"
            " AND starts_at < $4 AND $3 < ends_at ORDER BY starts_at LIMIT 1",
            cmd.sub,
            cmd.shift_id,
            cmd.starts_at,
            cmd.ends_at,
        )
        checked = ScheduleShift(
            cmd.shift_id,
            cmd.checkpoint_id,
            cmd.sub,
            cmd.party_id,
            cmd.role,
            cmd.starts_at,
            cmd.ends_at,
            closed is False,
            overlapping,
            cmd.max_hours,
        )
        return lambda state: domain.decide_schedule(state, checked)

    return await execute(
        pool,
        SHIFT,
        domain.shift_stream(cmd.shift_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=now,
        node_id=node_id,
        project=project_shifts,
    )


async def cancel_shift(
    pool: Any,
    checkpoint_id: str,
    shift_id: str,
    reason: str,
    node_id: str,
    now: datetime,
    ctx: CommandContext,
    expected: int | None,
) -> Outcome[Shift | None]:
    return await execute(
        pool,
        SHIFT,
        domain.shift_stream(shift_id),
        decide=lambda state: domain.decide_cancel(state, checkpoint_id, reason.strip()),
        ctx=ctx,
        occurred_at=now,
        node_id=node_id,
        expected_version=expected,
        project=project_shifts,
    )


# -- queries ---------------------------------------------------------------------------------


async def get_shift(conn: Any, shift_id: str) -> Shift | None:
    row = await conn.fetchrow(f"SELECT {SHIFT_COLUMNS} FROM duty_shifts WHERE id = $1", shift_id)
    return shift_of(row) if row else None


async def shifts_between(
    conn: Any, checkpoint_id: str, start: datetime, end: datetime
) -> list[Shift]:
    """Shifts overlapping [start, end), cancelled ones included, by start."""
    rows = await conn.fetch(
        f"SELECT {SHIFT_COLUMNS} FROM duty_shifts WHERE checkpoint_id = $1"
        " AND starts_at < $3 AND $2 < ends_at ORDER BY starts_at, id",
        checkpoint_id,
        start,
        end,
    )
    return [shift_of(r) for r in rows]


async def shifts_of(
    conn: Any, sub: str, checkpoint_ids: Sequence[str], start: datetime, end: datetime
) -> list[Shift]:
    """A person's shifts at these checkpoints overlapping [start, end]."""
    rows = await conn.fetch(
        f"SELECT {SHIFT_COLUMNS} FROM duty_shifts WHERE sub = $1"
        " AND checkpoint_id = ANY($2::text[]) AND NOT cancelled"
        " AND starts_at <= $4 AND $3 < ends_at",
        sub,
        list(set(checkpoint_ids)),
        start,
        end,
    )
    return [shift_of(r) for r in rows]
