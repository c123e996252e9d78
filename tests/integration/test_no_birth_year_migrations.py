"""Upgrading an existing store removes birth years: the registry's persons get an age band
column instead, its stored registrations lose theirs (and still decode), and the services'
views of persons drop the column."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from shared.contracts.published import decode
from shared.db import create_pool
from shared.eventstore import load_stream
from shared.migrations import upgrade
from shared.testing import Infra, drop_schema, unique

REGISTERED_V1 = {
    "person_id": "p1",
    "household_id": "h1",
    "residency": "resident",
    "tags": [],
    "document_type": "resident_id",
    "document_masked": "110105********1234",
    "name_masked": "张*",
    "phone_masked": None,
    "id_hmac": "ab" * 32,
    "birth_year": 1990,
    "sex": "male",
}


async def columns(conn: asyncpg.Connection, schema: str, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )
    return {r["column_name"] for r in rows}


async def test_the_registry_upgrade_leaves_no_birth_year_in_persons_or_stored_events(
    infra: Infra,
) -> None:
    schema = unique("mig_reg")
    try:
        await asyncio.to_thread(upgrade, "registry", infra.pg_dsn, schema, "0006")
        conn = await asyncpg.connect(infra.pg_dsn)
        try:
            await conn.execute(
                f"INSERT INTO {schema}.events (event_id, stream_id, stream_type, version, type,"
                " schema_version, occurred_at, data)"
                " VALUES (gen_random_uuid(), 'person-p1', 'person', 1, 'PersonRegistered', 1,"
                " now(), $1::jsonb)",
                json.dumps(REGISTERED_V1),
            )
            assert "birth_year" in await columns(conn, schema, "persons")

            await asyncio.to_thread(upgrade, "registry", infra.pg_dsn, schema)

            persons = await columns(conn, schema, "persons")
            assert "birth_year" not in persons and {"age_band", "age_band_on"} <= persons
            pool = await create_pool(infra.pg_dsn, schema)
            async with pool.acquire() as c:
                (stored,) = await load_stream(c, "person-p1")
            await pool.close()
            assert "birth_year" not in stored.data and stored.schema_version == 1
            assert decode(stored).model_dump()["age_band"] is None
        finally:
            await conn.close()
    finally:
        await drop_schema(infra.pg_dsn, schema)


async def test_the_views_of_persons_in_screening_and_checkpoint_drop_the_birth_year(
    infra: Infra,
) -> None:
    for service, before in (("screening", "0008"), ("checkpoint", "0006")):
        schema = unique(f"mig_{service[:5]}")
        try:
            await asyncio.to_thread(upgrade, service, infra.pg_dsn, schema, before)
            conn = await asyncpg.connect(infra.pg_dsn)
            try:
                # as the view was created before: with the column
                await conn.execute(
                    f"ALTER TABLE {schema}.persons ADD COLUMN IF NOT EXISTS birth_year integer"
                )
                await asyncio.to_thread(upgrade, service, infra.pg_dsn, schema)
                assert "birth_year" not in await columns(conn, schema, "persons")
            finally:
                await conn.close()
        finally:
            await drop_schema(infra.pg_dsn, schema)
