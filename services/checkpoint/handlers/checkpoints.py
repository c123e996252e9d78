"""Checkpoint commands and queries; `checkpoints` and `checkpoint_policies` are kept current
in each command's transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.checkpoint.domain import checkpoints as domain
from services.checkpoint.domain.checkpoints import Checkpoint, OpenCheckpoint, PolicyPeriod
from shared.commands import Aggregate, Outcome, execute
from shared.contracts import EventPayload
from shared.contracts.checkpoint import CheckpointPolicy
from shared.envelope import Envelope
from shared.eventstore import CommandContext

CHECKPOINT: Aggregate[Checkpoint | None] = Aggregate(domain.CHECKPOINT_STREAM, None, domain.evolve)
Decision = Callable[[Checkpoint | None], list[EventPayload]]


async def place_known(conn: Any, node_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM places WHERE id = $1 AND NOT retired)", node_id
        )
    )


async def node_of(conn: Any, checkpoint_id: str) -> str | None:
    value = await conn.fetchval("SELECT node_id FROM checkpoints WHERE id = $1", checkpoint_id)
    return str(value) if value is not None else None


async def project_checkpoints(conn: Any, events: list[Envelope]) -> None:
    for env in events:
        d = env.data
        if env.type == "CheckpointOpened":
            await conn.execute(
                "INSERT INTO checkpoints (id, node_id, name, level, policy, opened_at, opened_by,"
                " version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                d["checkpoint_id"],
                d["node_id"],
                d["name"],
                d["level"],
                d["policy"],
                env.occurred_at,
                env.actor,
                env.version,
            )
            await _add_period(conn, env, env.occurred_at)
        elif env.type == "CheckpointPolicyChanged":
            await conn.execute(
                "UPDATE checkpoints SET policy = $2, version = $3 WHERE id = $1",
                d["checkpoint_id"],
                d["policy"],
                env.version,
            )
            await _add_period(conn, env, datetime.fromisoformat(d["effective_from"]))
        elif env.type == "CheckpointClosed":
            await conn.execute(
                "UPDATE checkpoints SET closed_at = $2, close_reason = $3, version = $4"
                " WHERE id = $1",
                d["checkpoint_id"],
                env.occurred_at,
                d["reason"],
                env.version,
            )


async def _add_period(conn: Any, env: Envelope, effective_from: datetime) -> None:
    await conn.execute(
        "INSERT INTO checkpoint_policies (checkpoint_id, version, effective_from, policy,"
        " changed_by) VALUES ($1, $2, $3, $4, $5)",
        env.data["checkpoint_id"],
        env.version,
        effective_from,
        env.data["policy"],
        env.actor,
    )


async def open_checkpoint(
    pool: Any,
    checkpoint_id: str,
    node_id: str,
    name: str,
    level: Any,
    policy: CheckpointPolicy,
    opened_at: datetime,
    ctx: CommandContext,
) -> Outcome[Checkpoint | None]:
    async def prepare(conn: Any) -> Decision:
        cmd = OpenCheckpoint(
            checkpoint_id, node_id, name, level, policy, await place_known(conn, node_id)
        )
        return lambda state: domain.decide_open(state, cmd)

    return await execute(
        pool,
        CHECKPOINT,
        domain.checkpoint_stream(checkpoint_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=opened_at,
        node_id=node_id,
        project=project_checkpoints,
    )


async def change_policy(
    pool: Any,
    checkpoint_id: str,
    policy: CheckpointPolicy,
    effective_from: datetime,
    now: datetime,
    ctx: CommandContext,
    expected: int | None,
) -> Outcome[Checkpoint | None]:
    async def prepare(conn: Any) -> Decision:
        opened_at = await conn.fetchval(
            "SELECT opened_at FROM checkpoints WHERE id = $1", checkpoint_id
        )
        periods = (await policy_periods(conn, [checkpoint_id])).get(checkpoint_id, [])
        latest = domain.latest_period(periods)
        return lambda state: domain.decide_change_policy(
            state, policy, effective_from, opened_at, latest
        )

    async with pool.acquire() as conn:
        node_id = await node_of(conn, checkpoint_id)
    return await execute(
        pool,
        CHECKPOINT,
        domain.checkpoint_stream(checkpoint_id),
        prepare=prepare,
        ctx=ctx,
        occurred_at=now,
        node_id=node_id,
        expected_version=expected,
        project=project_checkpoints,
    )


async def close_checkpoint(
    pool: Any,
    checkpoint_id: str,
    reason: str,
    closed_at: datetime,
    ctx: CommandContext,
    expected: int | None,
) -> Outcome[Checkpoint | None]:
    async with pool.acquire() as conn:
        node_id = await node_of(conn, checkpoint_id)
    return await execute(
        pool,
        CHECKPOINT,
        domain.checkpoint_stream(checkpoint_id),
        decide=lambda state: domain.decide_close(state, reason),
        ctx=ctx,
        occurred_at=closed_at,
        node_id=node_id,
        expected_version=expected,
        project=project_checkpoints,
    )


# -- queries ---------------------------------------------------------------------------------


async def policy_periods(conn: Any, checkpoint_ids: Sequence[str]) -> dict[str, list[PolicyPeriod]]:
    rows = await conn.fetch(
        "SELECT checkpoint_id, version, effective_from, policy FROM checkpoint_policies"
        " WHERE checkpoint_id = ANY($1::text[]) ORDER BY checkpoint_id, effective_from, version",
        list(set(checkpoint_ids)),
    )
    out: dict[str, list[PolicyPeriod]] = {}
    for r in rows:
        out.setdefault(r["checkpoint_id"], []).append(
            PolicyPeriod(
                r["effective_from"], r["version"], CheckpointPolicy.model_validate(r["policy"])
            )
        )
    return out


async def get_checkpoint(conn: Any, checkpoint_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, node_id, name, level, opened_at, opened_by, closed_at, close_reason, version"
        " FROM checkpoints WHERE id = $1",
        checkpoint_id,
    )
    if row is None:
        return None
    periods = (await policy_periods(conn, [checkpoint_id])).get(checkpoint_id, [])
    return {**dict(row), "periods": periods}
