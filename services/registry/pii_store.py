"""Clear PII at rest: AES-GCM ciphertexts in `pii`, every clear read in `pii_access_log`.

Each ciphertext is bound to its owner and field (the AEAD's associated data), so a value
copied onto another row does not decrypt.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from services.registry.pii import PiiCipher


def aad(owner_id: str, field: str) -> bytes:
    return f"{owner_id}:{field}".encode()


async def store(
    conn: Any, cipher: PiiCipher, owner_id: str, values: Mapping[str, str | None]
) -> None:
    """Write (or replace) the clear values of `owner_id`; None deletes that field."""
    for field, value in values.items():
        if value is None:
            await conn.execute(
                "DELETE FROM pii WHERE owner_id = $1 AND field = $2", owner_id, field
            )
            continue
        key_id, blob = cipher.encrypt(value, aad(owner_id, field))
        await conn.execute(
            """
            INSERT INTO pii (owner_id, field, key_id, ciphertext) VALUES ($1, $2, $3, $4)
            ON CONFLICT (owner_id, field) DO UPDATE SET key_id = EXCLUDED.key_id,
                ciphertext = EXCLUDED.ciphertext, updated_at = now()
            """,
            owner_id,
            field,
            key_id,
            blob,
        )


async def reveal(
    conn: Any,
    cipher: PiiCipher,
    owner_id: str,
    *,
    actor: str,
    roles: Sequence[str],
    reason: str,
    correlation_id: str | None,
) -> dict[str, str]:
    """The clear values of `owner_id`; the read is logged in the same transaction."""
    rows = await conn.fetch(
        "SELECT field, key_id, ciphertext FROM pii WHERE owner_id = $1 ORDER BY field", owner_id
    )
    clear = {
        r["field"]: cipher.decrypt(r["key_id"], r["ciphertext"], aad(owner_id, r["field"]))
        for r in rows
    }
    await conn.execute(
        "INSERT INTO pii_access_log (actor, roles, person_id, fields, reason, correlation_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        list(roles),
        owner_id,
        sorted(clear),
        reason,
        uuid.UUID(correlation_id) if correlation_id else None,
    )
    return clear


async def rotate(pool: Any, cipher: PiiCipher, batch: int = 1000) -> int:
    """Re-encrypt values held under old keys with the current key, in short transactions."""
    done = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT owner_id, field, key_id, ciphertext FROM pii WHERE key_id <> $1"
                " LIMIT $2 FOR UPDATE SKIP LOCKED",
                cipher.current_key_id,
                batch,
            )
            for r in rows:
                key_id, blob = cipher.rotate(
                    r["key_id"], r["ciphertext"], aad(r["owner_id"], r["field"])
                )
                await conn.execute(
                    "UPDATE pii SET key_id = $3, ciphertext = $4, updated_at = now()"
                    " WHERE owner_id = $1 AND field = $2",
                    r["owner_id"],
                    r["field"],
                    key_id,
                    blob,
                )
        done += len(rows)
        if len(rows) < batch:
            return done
