"""Each service's migration brings a schema made by the first kernel to the lean event indexes."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import create_pool
from shared.eventstore import CommandContext, DuplicateCommand, append
from shared.kernel_schema import FIRST_EVENT_INDEXES, statements
from shared.migrations import upgrade
from shared.testing import Infra, drop_schema, unique
from tests.integration.helpers import raw_event

LEAN = {
    "events_pkey": "",
    "events_stream_version_key": "",
    "events_command_key": "WHERE (command_id IS NOT NULL)",
    "events_tx_position_idx": "",
}
BEFORE = {"registry": "0003", "checkpoint": "0003", "screening": "0005", "reporting": "0006"}


async def _indexes(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() AND tablename = 'events'"
    )
    return {r["indexname"]: r["indexdef"].partition(")")[2].strip() for r in rows}


@pytest.mark.parametrize("service", sorted(BEFORE))
async def test_upgrade_from_the_first_kernel_leaves_the_lean_indexes(
    infra: Infra, service: str
) -> None:
    schema = unique("idx")
    try:
        await asyncio.to_thread(upgrade, service, infra.pg_dsn, schema, BEFORE[service])
        pool = await create_pool(infra.pg_dsn, schema, max_size=1)
        try:
            async with pool.acquire() as conn:
                for sql in statements(FIRST_EVENT_INDEXES):  # as the first kernel made them
                    await conn.execute(sql)
                assert "events_event_id_key" in await _indexes(conn)
            await asyncio.to_thread(upgrade, service, infra.pg_dsn, schema)
            async with pool.acquire() as conn:
                assert await _indexes(conn) == LEAN
                ctx = CommandContext(command_id="u:k")
                await append(conn, [raw_event("s-1", 1)], ctx)
                with pytest.raises(DuplicateCommand):
                    await append(conn, [raw_event("s-2", 1)], ctx)
        finally:
            await pool.close()
    finally:
        await drop_schema(infra.pg_dsn, schema)


async def test_a_fresh_schema_has_the_lean_indexes(infra: Infra) -> None:
    schema = unique("idx")
    try:
        await asyncio.to_thread(upgrade, "registry", infra.pg_dsn, schema)
        conn = await asyncpg.connect(infra.pg_dsn, server_settings={"search_path": schema})
        try:
            assert await _indexes(conn) == LEAN
        finally:
            await conn.close()
    finally:
        await drop_schema(infra.pg_dsn, schema)
