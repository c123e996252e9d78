"""Running commands: idempotent retries, If-Match preconditions, concurrent conflicts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from shared.commands import Aggregate, PreconditionFailed, execute
from shared.contracts import EventPayload
from shared.contracts.registry import NodeCreated
from shared.envelope import utc_now
from shared.eventstore import CommandContext, ConcurrencyError


@dataclass(frozen=True)
class Count:
    created: int = 0


def evolve(state: Count, event: EventPayload, version: int) -> Count:
    return Count(state.created + 1)


COUNTER = Aggregate("counter", Count(), evolve)


def created(n: int) -> list[EventPayload]:
    return [NodeCreated(node_id=f"n{n}", parent_id=None, kind="grid", name="x", path=f"n{n}")]


async def run(pool: Any, ctx: CommandContext, expected: int | None = None) -> Any:
    return await execute(
        pool,
        COUNTER,
        "c-1",
        decide=lambda s: created(s.created),
        ctx=ctx,
        occurred_at=utc_now(),
        expected_version=expected,
    )


async def test_a_retried_command_returns_the_first_result_and_writes_nothing(pool: Any) -> None:
    ctx = CommandContext(actor="u", command_id="u:k1")
    first = await run(pool, ctx)
    again = await run(pool, ctx)
    assert again.replayed and not first.replayed
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert again.version == first.version == 1
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_concurrent_retries_of_one_command_write_it_once(pool: Any) -> None:
    ctx = CommandContext(actor="u", command_id="u:k2")
    outcomes = await asyncio.gather(*(run(pool, ctx) for _ in range(5)))
    assert await pool.fetchval("SELECT count(*) FROM events") == 1
    assert len({o.events[0].event_id for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1


async def test_concurrent_different_commands_on_one_stream_conflict(pool: Any) -> None:
    outcomes = await asyncio.gather(
        *(run(pool, CommandContext()) for _ in range(5)), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if o not in won)
    assert await pool.fetchval("SELECT count(*) FROM events") == len(won)


async def test_if_match_with_a_stale_version_is_refused(pool: Any) -> None:
    await run(pool, CommandContext())
    with pytest.raises(PreconditionFailed) as info:
        await run(pool, CommandContext(), expected=0)
    assert info.value.current == 1
    assert (await run(pool, CommandContext(), expected=1)).version == 2


async def test_a_failing_projection_leaves_no_events(pool: Any) -> None:
    async def project(conn: Any, events: list[Any]) -> None:
        assert conn.is_in_transaction() and len(events) == 1
        raise RuntimeError("projection failed")

    with pytest.raises(RuntimeError):
        await execute(
            pool,
            COUNTER,
            "c-1",
            decide=lambda s: created(s.created),
            ctx=CommandContext(),
            occurred_at=utc_now(),
            project=project,
        )
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_decision_of_no_events_writes_nothing_and_projects_nothing(pool: Any) -> None:
    async def project(conn: Any, events: list[Any]) -> None:
        raise AssertionError("nothing to project")

    outcome = await execute(
        pool,
        COUNTER,
        "c-1",
        decide=lambda s: [],
        ctx=CommandContext(command_id="u:k3"),
        occurred_at=utc_now(),
        project=project,
    )
    assert (outcome.version, outcome.events, outcome.replayed) == (0, [], False)
