"""Screening learns places, households and persons from registry.events."""

from __future__ import annotations

from typing import Any

from shared.db import create_pool
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow

ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")


async def test_registry_people_appear_in_screenings_views(
    screening_stack: Stack, infra: Infra
) -> None:
    s = screening_stack
    await grow(s)
    admin = s.token("admin")
    assert (
        await s.registry.post(
            "/v1/households",
            headers=admin,
            json={"id": "h1", "parent_id": "b1", "door_number": "101"},
        )
    ).status_code == 201
    r = await s.registry.post(
        "/v1/persons",
        headers=admin,
        json={
            "id": "p1",
            "household_id": "h1",
            "name": "张三",
            "document_number": ZHANG,
            "tags": ["低保"],
        },
    )
    assert r.status_code == 201
    pool = await create_pool(infra.pg_dsn, s.apps["screening"].state.settings.schema_name)
    try:

        async def seen() -> Any:
            return await pool.fetchrow(
                "SELECT p.household_id, p.tags, p.name_masked, pl.path::text AS path"
                " FROM persons p JOIN places pl ON pl.id = p.household_id WHERE p.id = 'p1'"
            )

        row = await eventually(seen, message="screening never saw the person")
    finally:
        await pool.close()
    assert row["household_id"] == "h1" and row["tags"] == ["低保"]
    assert row["name_masked"] == "张*" and row["path"] == "root.street_a.comm.g1.b1.h1"
