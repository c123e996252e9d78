"""Clear PII at rest: encrypted per owner and field, rotated to a new key without loss."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.registry import pii_store
from services.registry.pii import PiiCipher, PiiTampered
from shared.db import create_pool
from shared.migrations import upgrade_async
from shared.testing import Infra, drop_schema, unique

OLD = "k1:" + PiiCipher.generate_key()
NEW = "k2:" + PiiCipher.generate_key()


@pytest.fixture
async def registry_pool(infra: Infra) -> AsyncIterator[Any]:
    schema = unique("pii")
    await upgrade_async("registry", infra.pg_dsn, schema)
    pool = await create_pool(infra.pg_dsn, schema)
    yield pool
    await pool.close()
    await drop_schema(infra.pg_dsn, schema)


async def test_values_are_stored_encrypted_and_rotation_keeps_them_readable(
    registry_pool: Any,
) -> None:
    old = PiiCipher(OLD)
    async with registry_pool.acquire() as conn:
        for i in range(25):
            await pii_store.store(conn, old, f"p{i}", {"name": f"张{i}", "phone": "13812345678"})
    raw = await registry_pool.fetch("SELECT ciphertext FROM pii")
    assert all("张".encode() not in r["ciphertext"] for r in raw)

    ring = PiiCipher(f"{NEW},{OLD}")
    assert await pii_store.rotate(registry_pool, ring, batch=10) == 50
    assert {r["key_id"] for r in await registry_pool.fetch("SELECT key_id FROM pii")} == {"k2"}
    async with registry_pool.acquire() as conn, conn.transaction():
        clear = await pii_store.reveal(conn, PiiCipher(NEW), "p7", actor="auditor-1",
                                       roles=["auditor"], reason="轮换核对", correlation_id=None)
    assert clear == {"name": "张7", "phone": "13812345678"}
    assert await registry_pool.fetchval("SELECT count(*) FROM pii_access_log") == 1


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(registry_pool: Any) -> None:
    cipher = PiiCipher(OLD)
    async with registry_pool.acquire() as conn:
        await pii_store.store(conn, cipher, "a", {"name": "甲"})
        await pii_store.store(conn, cipher, "b", {"name": "乙"})
        await conn.execute("UPDATE pii SET ciphertext = (SELECT ciphertext FROM pii"
                           " WHERE owner_id = 'a') WHERE owner_id = 'b'")
        with pytest.raises(PiiTampered):
            await pii_store.reveal(conn, cipher, "b", actor="x", roles=[], reason="r",
                                   correlation_id=None)
