"""The event store contract, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest

from shared.envelope import Envelope
from shared.eventstore import (
    CommandContext,
    ConcurrencyError,
    DuplicateCommand,
    MixedStream,
    NotFirstWrite,
    append,
    command_result,
    load_stream,
)
from tests.integration.helpers import append_next, raw_event


async def test_a_stream_refuses_an_event_of_another_type(pool: Any) -> None:
    """A vehicle appended after a node's events in the node's stream would make one stream
    hold two aggregates."""
    node = [replace(raw_event("n1", v), stream_type="node") for v in (1, 2)]
    async with pool.acquire() as conn:
        await append(conn, node)
        with pytest.raises(MixedStream) as info:
            await append(conn, [replace(raw_event("n1", 3), stream_type="vehicle")])
        assert info.value.stream_id == "n1"
        with pytest.raises(MixedStream):
            await append(
                conn,
                [raw_event("other", 1), replace(raw_event("n1", 3), stream_type="vehicle")],
            )
        assert [e.stream_type for e in await load_stream(conn, "n1")] == ["node", "node"]
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
        await append(conn, [replace(raw_event("n1", 3), stream_type="node")])


async def test_appended_events_load_in_version_order(pool: Any) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append(conn, [raw_event("s-1", 1), raw_event("s-1", 2)])
    async with pool.acquire() as conn:
        events = await load_stream(conn, "s-1")
    assert [(e.version, e.data["n"]) for e in events] == [(1, 1), (2, 2)]
    assert events[0].recorded_at.tzinfo is not None


async def test_second_writer_of_the_same_version_gets_a_conflict(pool: Any) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append(conn, [raw_event("s-1", 1)])
    with pytest.raises(ConcurrencyError) as info:
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, [raw_event("s-1", 1)])
    assert info.value.stream_id == "s-1"
    async with pool.acquire() as conn:
        assert len(await load_stream(conn, "s-1")) == 1


async def test_twenty_concurrent_writers_each_land_once_with_gapless_versions(pool: Any) -> None:
    versions = await asyncio.gather(*(append_next(pool, "busy") for _ in range(20)))
    assert sorted(versions) == list(range(1, 21))
    async with pool.acquire() as conn:
        stored = await load_stream(conn, "busy")
    assert [e.version for e in stored] == list(range(1, 21))
    assert len({e.event_id for e in stored}) == 20


async def test_a_retried_command_id_appends_nothing(pool: Any) -> None:
    ctx = CommandContext(actor="u1", command_id="u1:key-1")
    async with pool.acquire() as conn, conn.transaction():
        first = await append(conn, [raw_event("s-1", 1), raw_event("s-2", 1)], ctx)
    with pytest.raises(DuplicateCommand):
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, [raw_event("s-3", 1)], ctx)
    async with pool.acquire() as conn:
        assert [e.event_id for e in await command_result(conn, "u1:key-1")] == [
            e.event_id for e in first
        ]
        assert await conn.fetchval("SELECT count(*) FROM events") == 2


async def test_append_refuses_to_follow_another_write_in_its_transaction(pool: Any) -> None:
    """A prior write would give the events an older transaction id than they deserve."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE side (x int)")
        with pytest.raises(NotFirstWrite):
            async with conn.transaction():
                await conn.execute("INSERT INTO side VALUES (1)")
                await append(conn, [raw_event("s-1", 1)])
        assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_an_append_outside_a_transaction_commits_alone_with_the_same_checks(
    pool: Any,
) -> None:
    ctx = CommandContext(actor="u1", command_id="u1:alone")
    async with pool.acquire() as conn:
        stored = await append(conn, [raw_event("s-1", 1), raw_event("s-1", 2)], ctx)
        assert not conn.is_in_transaction()
        with pytest.raises(ConcurrencyError):
            await append(conn, [raw_event("s-1", 2)])
        with pytest.raises(DuplicateCommand):
            await append(conn, [raw_event("s-2", 1)], ctx)
    async with pool.acquire() as conn:
        assert await load_stream(conn, "s-1") == stored
        assert await conn.fetchval("SELECT count(DISTINCT tx_id) FROM events") == 1


async def test_the_envelopes_returned_are_those_a_load_returns(pool: Any) -> None:
    async with pool.acquire() as conn, conn.transaction():
        stored = await append(
            conn,
            [raw_event("s-1", 1, when="2022-04-01"), raw_event("s-1", 2, nested={"a": [1]})],
            CommandContext(actor="u1", correlation_id=uuid4(), causation_id=uuid4()),
        )
    async with pool.acquire() as conn:
        loaded = await load_stream(conn, "s-1")
    assert stored == loaded
    assert [e.model_dump() for e in stored] == [e.model_dump() for e in loaded]
    assert [Envelope.model_validate(e.model_dump()) for e in stored] == stored
    assert len({e.event_id for e in stored}) == 2
    assert all(e.event_id.version == 4 for e in stored)
