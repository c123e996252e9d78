"""Dates a caller gives are bounded over HTTP: a watch, a visit or a reading dated before the
fact horizon is a 422 naming the field (a quarantine starting in 1900 or on the old OpenAPI
example's 2020-01-31 was accepted, and the scheduler then owed it years of follow-ups); a
ledger's day outside the calendar is a 422 naming the parameter (year 1 and 9999 were 500)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.testing import eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_places import TREE, grow

SHANGHAI = ZoneInfo("Asia/Shanghai")


def reason_of(answer: object, field: str) -> str:
    body = answer.json()  # type: ignore[attr-defined]
    assert answer.status_code == 422, body  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    [error] = [e for e in body["errors"] if e["field"] == field]
    return str(error["reason"])


@pytest.mark.parametrize("starts_at", ["1900-01-01T09:00:00+08:00", "2020-01-31T09:00:00+08:00"])
async def test_a_quarantine_starting_before_the_horizon_is_refused(
    screening_stack: Stack, starts_at: str
) -> None:
    s = screening_stack
    answer = await s.screening.post(
        "/v1/quarantines",
        headers=s.token("medic"),
        json={
            "subject_id": "p-zhang-san",
            "type": "home",
            "starts_at": starts_at,
            "planned_end": (datetime.now(SHANGHAI) + timedelta(days=14)).date().isoformat(),
        },
    )
    assert "facts are dated at most 30 days back" in reason_of(answer, "body.starts_at")
    assert await s.apps["screening"].state.pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_visit_in_year_one_is_refused_alone_and_in_a_batch(screening_stack: Stack) -> None:
    s = screening_stack
    year_one = "0001-01-01T00:00:00+00:00"
    worker = s.token("grid_worker")
    visit = {"household_id": "h1", "method": "door", "outcome": "screened"}
    answer = await s.screening.post(
        "/v1/visits", headers=worker, json={**visit, "occurred_at": year_one}
    )
    assert reason_of(answer, "body.occurred_at").startswith("must not be before")
    batch = await s.screening.post(
        "/v1/visits:batch",
        headers=worker,
        json={"items": [{**visit, "id": "v-1", "occurred_at": year_one}]},
    )
    assert batch.status_code == 200, batch.text
    [result] = batch.json()["results"]
    assert (result["status"], result["field"]) == ("error", "occurred_at")
    assert result["reason"].startswith("must not be before")


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
async def test_a_ledger_for_a_day_outside_the_calendar_is_refused(stack: Stack, day: str) -> None:
    s = stack
    admin = s.token("admin")
    await grow(s, TREE[:1])

    async def known() -> bool:
        r = await s.reporting.get(
            "/v1/ledgers/screening.csv", headers=admin, params={"node_id": "root"}
        )
        return r.status_code == 200

    await eventually(known, timeout=20)
    for name in ("screening", "key-persons", "crossings"):
        answer = await s.reporting.get(
            f"/v1/ledgers/{name}.csv", headers=admin, params={"node_id": "root", "date": day}
        )
        assert reason_of(answer, "query.date").startswith("must not be")
    answer = await s.reporting.get(
        "/v1/daily-reports/completeness",
        headers=admin,
        params={"node_id": "root", "level": "grid", "date": day},
    )
    assert reason_of(answer, "query.date").startswith("must not be")
