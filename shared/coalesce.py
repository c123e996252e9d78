"""Fewer round trips for read-model handlers: runs of the same statement become one
`executemany`.

A projection handler typically issues one `execute(sql, *args)` per event; in a batch of
crossings or visits those are the same INSERT over and over, each a round trip. Wrapped in
`CoalescingConnection`, consecutive `execute` calls with the same SQL are queued and sent as
one `executemany` (asyncpg pipelines its argument sets) as soon as anything else is asked of
the connection — another statement, a fetch, a savepoint — or at `flush()`. Statements reach
Postgres in exactly the order they were issued, so the effect is the same.

The one difference: `execute` returns "" instead of the command status, and an error shows at
the next call or the flush. Use it only for handlers that do not read `execute`'s status (the
consumer base enables it where it is asked to; a failing batch is retried event by event,
each flushed inside its own savepoint, so the bad event is still the one parked).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any


class CoalescingConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._sql: str | None = None
        self._args: list[Sequence[Any]] = []

    async def flush(self) -> None:
        if self._sql is None:
            return
        sql, args = self._sql, self._args
        self._sql, self._args = None, []
        if len(args) == 1:
            await self._conn.execute(sql, *args[0])
        else:
            await self._conn.executemany(sql, args)

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        if not args or timeout is not None:  # scripts and timed calls go as they are
            await self.flush()
            status: str = await self._conn.execute(sql, *args, timeout=timeout)
            return status
        if sql != self._sql:
            await self.flush()
            self._sql = sql
        self._args.append(args)
        return ""

    async def executemany(self, sql: str, args: Any, *, timeout: float | None = None) -> None:
        await self.flush()
        await self._conn.executemany(sql, args, timeout=timeout)

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        await self.flush()
        return await self._conn.fetch(sql, *args, **kwargs)

    async def fetchrow(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        await self.flush()
        return await self._conn.fetchrow(sql, *args, **kwargs)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        await self.flush()
        return await self._conn.fetchval(sql, *args, **kwargs)

    def transaction(self, **kwargs: Any) -> _FlushedFirst:
        return _FlushedFirst(self, self._conn.transaction(**kwargs))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return self._flushing(attr)

    def _flushing(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.flush()
            return await method(*args, **kwargs)

        return call


class _FlushedFirst:
    """A savepoint that sends what is queued before it begins and before it ends."""

    def __init__(self, owner: CoalescingConnection, transaction: Any) -> None:
        self.owner = owner
        self.transaction = transaction

    async def __aenter__(self) -> Any:
        await self.owner.flush()
        return await self.transaction.__aenter__()

    async def __aexit__(self, kind: Any, error: Any, tb: Any) -> Any:
        if kind is None:
            try:
                await self.owner.flush()
            except BaseException as exc:
                await self.transaction.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        else:
            self.owner._sql, self.owner._args = None, []  # rolled back with the savepoint
        return await self.transaction.__aexit__(kind, error, tb)
