"""One rule for a screened household (已排查户), read alike by every view that counts it:
screening's campaign coverage, reporting's node figures, its 排查统计表 ledger and a party's
figures in a responsibility chain, for the same visits made through screening's API, with all
four services on real PostgreSQL and Kafka.

The tree and chain are test_chains' (一社区 → 阳光小区 → 3号楼 / 5号楼; 楼栋长 answers for 3号楼).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.registry.handlers.chains import ensure_builtin_templates
from shared.db import create_pool
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_chains import build
from tests.e2e.test_reporting_party_views import SHANGHAI, party, settle_households, today, visit


@pytest.fixture
async def chained(full_stack: Stack, infra: Infra) -> AsyncIterator[Stack]:
    pool = await create_pool(infra.pg_dsn, full_stack.settings.schema_name)
    try:
        await ensure_builtin_templates(pool)
    finally:
        await pool.close()
    yield full_stack


async def campaign_started(s: Stack) -> None:
    """A campaign over 一社区, once screening knows the place."""
    now = datetime.now(UTC)
    body = {
        "id": "c-1-sweep",
        "node_id": "c-1",
        "name": "一社区拉网式排查",
        "starts_on": (now - timedelta(days=1)).astimezone(SHANGHAI).date().isoformat(),
        "due_on": (now + timedelta(days=3)).astimezone(SHANGHAI).date().isoformat(),
    }

    async def started() -> bool:
        r = await s.screening.post("/v1/campaigns", headers=s.token("admin"), json=body)
        return r.status_code == 201

    await eventually(started, message="screening never learned 一社区")


async def node_stocks(s: Stack, node_id: str, day: str) -> dict[str, Any]:
    r = await s.reporting.get(
        f"/v1/nodes/{node_id}/summary", params={"date": day}, headers=s.token("command")
    )
    assert r.status_code == 200, r.text
    return {"screened": r.json()["stocks"]["screened_households"], "pct": r.json()["coverage_pct"]}


async def ledger_screened(s: Stack, node_id: str, day: str) -> dict[str, int]:
    """已排查户数 of the node and of each child, from the 排查统计表."""
    r = await s.reporting.get(
        "/v1/ledgers/screening.csv",
        params={"node_id": node_id, "date": day},
        headers=s.token("command"),
    )
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][4] == "已排查户数"
    return {row[0]: int(row[4]) for row in rows[1:]}


async def test_coverage_figures_ledgers_and_chains_count_the_same_screened_households(
    chained: Stack,
) -> None:
    s = chained
    day = today()
    await build(s)
    await settle_households(s, {"h-31": "b-3", "h-32": "b-3", "h-33": "b-3", "h-51": "b-5"}, [])
    await campaign_started(s)
    await visit(s, "v-1", "h-31")  # at the door, letter signed
    await visit(s, "v-2", "h-32", method="phone", commitment_signed=False)
    await visit(s, "v-3", "h-33", outcome="refused", commitment_signed=False)
    await visit(s, "v-4", "h-33", method="phone", outcome="absent", commitment_signed=False)
    await visit(s, "v-5", "h-51", method="notice")  # a notice with a signed letter

    # screening decided it and its event says so, visit by visit
    visited = await s.apps["screening"].state.pool.fetch(
        "SELECT schema_version, data FROM events WHERE type = 'HouseholdVisited'"
        " ORDER BY data->>'visit_id'"
    )
    assert [(r["schema_version"], r["data"]["screens_household"]) for r in visited] == [
        (2, True),
        (2, True),
        (2, False),
        (2, False),
        (2, True),
    ]

    r = await s.screening.get("/v1/campaigns/c-1-sweep", headers=s.token("command"))
    coverage = r.json()["coverage"]
    assert (coverage["households"], coverage["screened"], coverage["absent"]) == (4, 3, 1)
    assert (coverage["refused"], coverage["not_visited"]) == (0, 0)

    expected = {"c-1": 3, "yangguang": 3}

    async def reporting_agrees() -> bool:
        return await ledger_screened(s, "c-1", day) == expected and (
            await node_stocks(s, "c-1", day)
        ) == {"screened": 3, "pct": 75.0}

    await eventually(reporting_agrees, timeout=30, message="reporting never counted 3 of 4")
    assert await ledger_screened(s, "yangguang", day) == {"yangguang": 3, "b-3": 2, "b-5": 1}
    b3 = await node_stocks(s, "b-3", day)
    assert b3 == {"screened": 2, "pct": 66.67}

    async def chain_agrees() -> bool:
        r = await party(s, "baobao-4", "p-volunteer", day, s.token("command"))
        return r.status_code == 200 and r.json()["stocks"]["screened_households"] == 2

    await eventually(chain_agrees, timeout=30, message="楼栋长's figures never counted 2")
