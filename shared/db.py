"""asyncpg pools bound to one service's schema."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import asyncpg
import orjson

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    if not _IDENT.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def advisory_key(name: str) -> int:
    """The bigint key of the Postgres advisory lock called `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> Any:
    """A pool whose connections see the service's schema first (then `public` for ltree)."""
    check_schema_name(schema)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
    )


async def ensure_schema(dsn: str, schema: str) -> None:
    check_schema_name(schema)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS ltree")
    except asyncpg.UniqueViolationError:
        pass  # a concurrent creator won the race; the object exists
    finally:
        await conn.close()
