"""Rotating the PII key: with the new key first in the ring, old values still open and new
ones are sealed under it; `python -m services.registry.pii --rotate` moves every stored value
onto it, after which the old key can leave the ring."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.registry import pii_store
from services.registry.pii import PiiCipher
from shared.db import create_pool
from shared.migrations import upgrade_async
from shared.testing import ROOT, Infra, drop_schema, unique

OLD = "k1:" + PiiCipher.generate_key()
NEW = "k2:" + PiiCipher.generate_key()


@pytest.fixture
async def registry(infra: Infra) -> AsyncIterator[tuple[str, Any]]:
    schema = unique("piirot")
    await upgrade_async("registry", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema)
    yield schema, pool
    await pool.close()
    await drop_schema(infra.pg_dsn, schema)


def rotate_command(infra: Infra, schema: str, ring: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_DATABASE_URL": infra.pg_dsn, "REGISTRY_DB_SCHEMA": schema,
           "REGISTRY_PII_KEYS": ring}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "services.registry.pii", "--rotate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def reveal(pool: Any, cipher: PiiCipher, owner: str) -> dict[str, str]:
    async with pool.acquire() as conn, conn.transaction():
        return await pii_store.reveal(conn, cipher, owner, actor="auditor-1", roles=["auditor"],
                                      reason="key rotation check", correlation_id=None)  # fmt: skip


async def test_the_rotate_command_moves_every_value_onto_the_current_key(
    infra: Infra, registry: tuple[str, Any]
) -> None:
    schema, pool = registry
    async with pool.acquire() as conn:
        for i in range(20):
            await pii_store.store(conn, PiiCipher(OLD), f"p{i}", {"name": f"张{i}",
                                  "document_number": f"11010519491231{i:04d}"})  # fmt: skip

    # 1. the new key goes first in the ring: old values still open, new ones use it
    ring = PiiCipher(f"{NEW},{OLD}")
    assert await reveal(pool, ring, "p3") == {
        "name": "张3",
        "document_number": "110105194912310003",
    }
    async with pool.acquire() as conn:
        await pii_store.store(conn, ring, "p-new", {"name": "李新"})
    assert await pool.fetchval("SELECT key_id FROM pii WHERE owner_id = 'p-new'") == "k2"

    # 2. the command re-encrypts the rest, and says what each key still holds
    done = rotate_command(infra, schema, f"{NEW},{OLD}")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 40 values onto key k2" in done.stdout
    assert "values per key: k2=41" in done.stdout
    assert {r["key_id"] for r in await pool.fetch("SELECT key_id FROM pii")} == {"k2"}

    # 3. the old key leaves the ring: everything still opens under the new one alone
    only_new = PiiCipher(NEW)
    p19 = await reveal(pool, only_new, "p19")
    assert p19 == {"name": "张19", "document_number": "110105194912310019"}
    assert await reveal(pool, only_new, "p-new") == {"name": "李新"}
    again = rotate_command(infra, schema, NEW)
    assert again.returncode == 0 and "re-encrypted 0 values" in again.stdout


async def test_rotating_without_the_old_key_stops_and_says_which_key_is_missing(
    infra: Infra, registry: tuple[str, Any]
) -> None:
    schema, pool = registry
    async with pool.acquire() as conn:
        await pii_store.store(conn, PiiCipher(OLD), "p1", {"name": "王五"})
    done = rotate_command(infra, schema, NEW)
    assert done.returncode == 1
    assert "PII key 'k1' is not in the key ring" in done.stderr
    assert await pool.fetchval("SELECT key_id FROM pii WHERE owner_id = 'p1'") == "k1"
