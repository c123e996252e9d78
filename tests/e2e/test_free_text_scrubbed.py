"""Free text typed with an ID number and a phone in it (a visit note, an audit's discrepancies,
a void reason, a household's address) is stored in the event masked, and served masked to
every reader, with registry and screening on real PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import create_pool
from shared.identity import resident_id_check_digit
from shared.testing import Infra
from tests.e2e.conftest import Stack
from tests.e2e.test_screening_visits import item, seed

RESIDENT_ID = "110105199003071234"
MOBILE = "13812345678"
TYPED = f"户主身份证{RESIDENT_ID}，电话 +86 138-1234-5678，已签承诺书"
STORED = "户主身份证110105********1234，电话 138****5678，已签承诺书"


async def stored_events(infra: Infra, stack: Stack, service: str) -> list[str]:
    schema = stack.apps[service].state.settings.schema_name
    pool = await create_pool(infra.pg_dsn, schema)
    try:
        return [str(r["data"]) for r in await pool.fetch("SELECT data::text AS data FROM events")]
    finally:
        await pool.close()


def clear(texts: list[str]) -> list[str]:
    return [t for t in texts if RESIDENT_ID in t or MOBILE in t or "138-1234-5678" in t]


async def test_a_visit_note_with_an_id_and_a_phone_is_stored_and_served_masked(
    screening_stack: Stack, infra: Infra
) -> None:
    s = screening_stack
    await seed(s)
    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")
    now = datetime.now(UTC)

    r = await s.screening.post(
        "/v1/visits", headers=worker, json=item("v1", "h1", now, notes=TYPED)
    )
    assert r.status_code == 201, r.text
    assert r.json()["notes"] == STORED
    batch: list[dict[str, Any]] = [item("v2", "h2", now - timedelta(minutes=1), notes=TYPED)]
    r = await s.screening.post("/v1/visits:batch", headers=worker, json={"items": batch})
    assert r.status_code == 200, r.text
    auditor = s.token("auditor", scope=["street-a"], sub="auditor-1")
    r = await s.screening.post(
        "/v1/audits",
        headers=auditor,
        json={"id": "a1", "visit_id": "v2", "verdict": "disputed", "discrepancies": TYPED},
    )
    assert r.status_code == 201, r.text
    assert r.json()["discrepancies"] == STORED
    r = await s.screening.post("/v1/visits/v2/void", headers=auditor, json={"reason": TYPED})
    assert r.status_code == 200, r.text
    assert r.json()["void_reason"] == STORED

    for reader in ("command", "auditor", "integrator"):
        for visit_id in ("v1", "v2"):
            r = await s.screening.get(f"/v1/visits/{visit_id}", headers=s.token(reader))
            assert r.status_code == 200, r.text
            assert clear([r.text]) == []
            assert STORED in r.text
    assert clear(await stored_events(infra, s, "screening")) == []

    admin = s.token("admin")
    r = await s.registry.post(
        "/v1/households",
        headers=admin,
        json={"id": "h9", "parent_id": "b1", "door_number": "9", "address": TYPED},
    )
    assert r.status_code == 201, r.text
    assert r.json()["address"] == STORED

    # a roster's address and tag columns are free text too
    holder = "11010519800101123"
    holder += resident_id_check_digit(holder)
    roster = (
        "楼栋,单元,楼层,门牌号,姓名,身份证号,联系电话,地址,标签\n"
        f"1,1,3,301,张三,{holder},13912345670,幸福路1号 联系{MOBILE},低保、邻居{RESIDENT_ID}\n"
    )
    r = await s.registry.post(
        "/v1/imports/households",
        params={"parent_id": "comm"},
        content=roster.encode("utf-8-sig"),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    (row,) = r.json()["results"]
    assert row["status"] == "created", row
    household = await s.registry.get(f"/v1/households/{row['household_id']}", headers=admin)
    assert household.json()["address"] == "幸福路1号 联系138****5678"
    person = await s.registry.get(f"/v1/persons/{row['person_id']}", headers=admin)
    assert person.json()["tags"] == ["低保", "邻居110105********1234"]
    assert clear(await stored_events(infra, s, "registry")) == []
