"""Coalesced statements reach Postgres in the order they were issued, fewer round trips."""

from __future__ import annotations

from typing import Any

import pytest

from shared.coalesce import CoalescingConnection

INSERT = "INSERT INTO log (n, note) VALUES ($1, $2)"


@pytest.fixture
async def log_table(pool: Any) -> None:
    await pool.execute("CREATE TABLE log (seq serial PRIMARY KEY, n int UNIQUE, note text)")


class CountingManyCalls:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.many: list[tuple[str, int]] = []

    async def executemany(self, sql: str, args: Any, **kwargs: Any) -> None:
        self.many.append((sql, len(args)))
        await self.conn.executemany(sql, args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def rows(pool: Any) -> list[tuple[int, str]]:
    return [(r["n"], r["note"]) for r in await pool.fetch("SELECT n, note FROM log ORDER BY seq")]


async def test_runs_of_one_statement_go_as_one_executemany_in_order(
    pool: Any, log_table: None
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        spy = CountingManyCalls(conn)
        c = CoalescingConnection(spy)
        for n in range(3):
            assert await c.execute(INSERT, n, "a") == ""
        # a read sees what was issued before it
        assert await c.fetchval("SELECT count(*) FROM log") == 3
        await c.execute("UPDATE log SET note = $2 WHERE n = $1", 1, "b")
        await c.execute(INSERT, 3, "c")
        await c.flush()
        assert spy.many == [(INSERT, 3)]  # three inserts in one go; single ones as they are
    assert await rows(pool) == [(0, "a"), (1, "b"), (2, "a"), (3, "c")]


async def test_a_failing_savepoint_discards_what_it_queued(pool: Any, log_table: None) -> None:
    async with pool.acquire() as conn, conn.transaction():
        c = CoalescingConnection(conn)
        await c.execute(INSERT, 1, "kept")
        with pytest.raises(RuntimeError):
            async with c.transaction():
                await c.execute(INSERT, 2, "rolled back")
                raise RuntimeError("handler failed")
        with pytest.raises(Exception, match="duplicate key"):
            async with c.transaction():
                await c.execute(INSERT, 1, "duplicate")  # fails at the savepoint's end
        await c.execute(INSERT, 3, "after")
        await c.flush()
    assert await rows(pool) == [(1, "kept"), (3, "after")]
