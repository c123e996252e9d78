"""Campaigns, household visits (single and offline batches), audits and voiding over HTTP,
with registry and screening running on real PostgreSQL and Kafka; and who may call what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute

from services.screening.api.reports import ROUTERS as REPORT_ROUTERS
from services.screening.api.visits import ROUTERS as VISIT_ROUTERS
from shared.auth import Role
from shared.db import create_pool
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import TREE, grow

SHANGHAI = ZoneInfo("Asia/Shanghai")
# the place tree of test_places plus a building in the second grid
VISIT_TREE = [*TREE, ("b2", "g2", "building", "2栋")]
HOUSEHOLDS = {"h1": "b1", "h2": "b1", "h3": "b1", "h4": "b2"}


async def seed(
    stack: Stack,
    tree: list[tuple[str, str | None, str, str]] = VISIT_TREE,
    households: dict[str, str] = HOUSEHOLDS,
) -> None:
    """Grow the tree and register households through the registry, then wait until
    screening's views hold every household."""
    await grow(stack, tree)
    admin = stack.token("admin")
    for household_id, parent in households.items():
        r = await stack.registry.post(
            "/v1/households",
            headers=admin,
            json={"id": household_id, "parent_id": parent, "door_number": household_id[1:]},
        )
        assert r.status_code == 201, r.text

    async def known() -> bool:
        for household_id in households:
            r = await stack.screening.get(f"/v1/households/{household_id}/visits", headers=admin)
            if r.status_code != 200:
                return False
        return True

    await eventually(known, message="screening never learned the households")


async def count_events(infra: Infra, stack: Stack, type_: str | None = None) -> int:
    pool = await create_pool(infra.pg_dsn, stack.apps["screening"].state.settings.schema_name)
    try:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM events WHERE $1::text IS NULL OR type = $1", type_
            )
        )
    finally:
        await pool.close()


def item(visit_id: str, household_id: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": visit_id,
        "household_id": household_id,
        "method": "door",
        "outcome": "screened",
        "steps": ["greet", "qr_scanned", "notice_handed", "inquiry_recorded"],
        "commitment_signed": True,
        "occurred_at": at.isoformat(),
        **extra,
    }


async def coverage(stack: Stack, campaign_id: str) -> dict[str, Any]:
    r = await stack.screening.get(f"/v1/campaigns/{campaign_id}", headers=stack.token("command"))
    assert r.status_code == 200, r.text
    return dict(r.json()["coverage"])


async def test_visits_single_and_offline_batches_count_in_campaign_coverage(
    screening_stack: Stack, infra: Infra
) -> None:
    s = screening_stack
    await seed(s)
    worker = s.token("grid_worker", scope=["comm"], sub="worker-1")
    now = datetime.now(UTC)

    r = await s.screening.post(
        "/v1/campaigns",
        headers=worker,
        json={
            "id": "c1",
            "node_id": "comm",
            "name": "幸福社区拉网式排查",
            "starts_on": (now - timedelta(days=7)).astimezone(SHANGHAI).date().isoformat(),
            "due_on": (now + timedelta(days=3)).astimezone(SHANGHAI).date().isoformat(),
            "goal": "不漏一户一人",
        },
    )
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"'
    assert r.json()["coverage"] | {"ratio": None} == {
        "households": 4,
        "screened": 0,
        "absent": 0,
        "refused": 0,
        "vacant": 0,
        "not_visited": 4,
        "ratio": None,
        "due_on": r.json()["due_on"],
        "overdue": False,
    }
    bad = await s.screening.post(
        "/v1/campaigns",
        headers=worker,
        json={"node_id": "comm", "name": "x", "starts_on": "2020-02-01", "due_on": "2020-01-31"},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.due_on"

    # one visit at the door: the commitment letter is signed, so h1 is screened
    single = item("v1", "h1", now - timedelta(hours=1), campaign_id="c1", notes="已签承诺书")
    r = await s.screening.post("/v1/visits", headers=worker, json=single)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"'
    body = r.json()
    assert body["visitor"] == "worker-1" and body["outcome"] == "screened"
    assert body["steps"] == [
        "greet",
        "qr_scanned",
        "notice_handed",
        "commitment_signed",
        "inquiry_recorded",
    ]
    again = await s.screening.post("/v1/visits", headers=worker, json=single)
    assert again.status_code == 201 and again.json() == body
    clash = await s.screening.post("/v1/visits", headers=worker, json={**single, "notes": "另一次"})
    assert clash.status_code == 409
    unknown = await s.screening.post("/v1/visits", headers=worker, json=item("vx", "nope", now))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.household_id"
    keyed = {**worker, "Idempotency-Key": "phone-call-1"}
    call = item(
        "ignored",
        "h3",
        now - timedelta(hours=4),
        method="phone",
        outcome="absent",
        commitment_signed=False,
        steps=["greet"],
    )
    del call["id"]
    first, second = [
        await s.screening.post("/v1/visits", headers=keyed, json=call) for _ in range(2)
    ]
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]

    # an offline upload: back-dated items, a retry of v1, and items that break rules
    three_days_ago = now - timedelta(days=3)
    upload = [
        item(
            "v2",
            "h2",
            three_days_ago,
            campaign_id="c1",
            method="door",
            outcome="absent",
            commitment_signed=False,
            steps=["greet", "notice_handed"],
        ),
        item(
            "v3",
            "h3",
            now - timedelta(hours=2),
            outcome="refused",
            commitment_signed=False,
            steps=["greet"],
        ),
        item("v4", "h4", now - timedelta(hours=3), method="notice", campaign_id="c1"),
        single,  # uploaded again: unchanged
        {**single, "notes": "改过"},  # the same id with other content
        item("v5", "nope", now),  # unknown household
        item("v6", "h2", now + timedelta(hours=2)),  # in the future
        item("v7", "h2", now, method="fax"),  # not a method
        item("v8", "h2", now, method="notice", commitment_signed=False, steps=[]),
    ]
    before = await count_events(infra, s)
    r = await s.screening.post("/v1/visits:batch", headers=worker, json={"items": upload})
    assert r.status_code == 200, r.text
    out = r.json()
    got = [(x["index"], x["id"], x["status"], x["refusal"], x["field"]) for x in out["results"]]
    assert got == [
        (0, "v2", "created", None, None),
        (1, "v3", "created", None, None),
        (2, "v4", "created", None, None),
        (3, "v1", "unchanged", None, None),
        (4, "v1", "error", "conflict", "id"),
        (5, "v5", "error", "invalid", "household_id"),
        (6, "v6", "error", "invalid", "occurred_at"),
        (7, "v7", "error", "invalid", "method"),
        (8, "v8", "error", "invalid", "outcome"),
    ]
    assert (out["received"], out["created"], out["unchanged"], out["errors"]) == (9, 3, 1, 5)
    assert await count_events(infra, s) == before + 3

    # the same upload sent again records nothing
    r = await s.screening.post("/v1/visits:batch", headers=worker, json={"items": upload})
    assert [x["status"] for x in r.json()["results"][:4]] == ["unchanged"] * 4
    assert await count_events(infra, s) == before + 3

    # the back-dated visit keeps its field time and belongs to that day
    r = await s.screening.get("/v1/visits/v2", headers=worker)
    assert datetime.fromisoformat(r.json()["occurred_at"]) == three_days_ago
    assert r.json()["day"] == three_days_ago.astimezone(SHANGHAI).date().isoformat()

    # h1 and h4 screened (signed), h2 absent, h3 refused: visits without a campaign count
    # from the campaign's start, and the latest outcome stands unless one visit screened
    assert await coverage(s, "c1") | {"due_on": None} == {
        "households": 4,
        "screened": 2,
        "absent": 1,
        "refused": 1,
        "vacant": 0,
        "not_visited": 0,
        "ratio": 0.5,
        "due_on": None,
        "overdue": False,
    }

    # audits: v1 confirmed; v4 disputed and then voided, so h4 is no longer screened
    auditor = s.token("auditor", scope=["street-a"], sub="auditor-1")
    r = await s.screening.post(
        "/v1/audits", headers=auditor, json={"id": "a1", "visit_id": "v1", "verdict": "confirmed"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["auditor"] == "auditor-1" and r.headers["etag"] == '"2"'
    r = await s.screening.post(
        "/v1/audits",
        headers=auditor,
        json={
            "id": "a2",
            "visit_id": "v4",
            "verdict": "disputed",
            "discrepancies": "回访:未见承诺书",
        },
    )
    assert r.status_code == 201, r.text
    stale = await s.screening.post(
        "/v1/visits/v4/void", headers={**auditor, "If-Match": '"1"'}, json={"reason": "未入户"}
    )
    assert stale.status_code == 412
    r = await s.screening.post(
        "/v1/visits/v4/void", headers={**auditor, "If-Match": '"2"'}, json={"reason": "未入户"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["voided"] and r.json()["audit_verdict"] == "disputed"
    late_audit = await s.screening.post(
        "/v1/audits", headers=auditor, json={"visit_id": "v4", "verdict": "confirmed"}
    )
    assert late_audit.status_code == 409
    assert (await coverage(s, "c1"))["screened"] == 1
    assert (await coverage(s, "c1"))["not_visited"] == 1

    # history, newest first, a page at a time
    r = await s.screening.post(
        "/v1/visits", headers=worker, json=item("v9", "h2", now - timedelta(minutes=5))
    )
    assert r.status_code == 201
    page = await s.screening.get("/v1/households/h2/visits", headers=worker, params={"limit": 1})
    assert [v["id"] for v in page.json()["items"]] == ["v9"]
    rest = await s.screening.get(
        "/v1/households/h2/visits",
        headers=worker,
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
    )
    assert [v["id"] for v in rest.json()["items"]] == ["v2"]
    assert rest.json()["next_cursor"] is None
    assert (await coverage(s, "c1"))["screened"] == 2


async def test_visits_outside_the_callers_jurisdiction_are_refused(screening_stack: Stack) -> None:
    s = screening_stack
    await seed(s)
    g2_worker = s.token("grid_worker", scope=["g2"], sub="worker-2")
    now = datetime.now(UTC)
    r = await s.screening.post("/v1/visits", headers=g2_worker, json=item("v1", "h1", now))
    assert r.status_code == 403
    r = await s.screening.post(
        "/v1/visits:batch",
        headers=g2_worker,
        json={"items": [item("v1", "h1", now), item("v2", "h4", now)]},
    )
    assert [(x["status"], x["refusal"]) for x in r.json()["results"]] == [
        ("error", "forbidden"),
        ("created", None),
    ]
    r = await s.screening.post(
        "/v1/campaigns",
        headers=g2_worker,
        json={"node_id": "g1", "name": "x", "starts_on": "2020-01-27", "due_on": "2020-01-31"},
    )
    assert r.status_code == 403
    assert (await s.screening.get("/v1/households/h1/visits", headers=g2_worker)).status_code == 403
    assert (await s.screening.get("/v1/visits/v2", headers=g2_worker)).status_code == 200
    g1_auditor = s.token("auditor", scope=["g1"])
    r = await s.screening.post(
        "/v1/audits", headers=g1_auditor, json={"visit_id": "v2", "verdict": "confirmed"}
    )
    assert r.status_code == 403


# -- who may call what -----------------------------------------------------------------------

EVERY_ROLE = frozenset(Role)
FIELD = frozenset({Role.ADMIN, Role.GRID_WORKER})
AUDIT = frozenset({Role.ADMIN, Role.AUDITOR})
VISIT_READERS = frozenset(
    {Role.ADMIN, Role.GRID_WORKER, Role.MEDIC, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR}
)
REPORT_READERS = frozenset(
    {Role.ADMIN, Role.GRID_WORKER, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR}
)
ROLE_DAY = datetime.now(SHANGHAI).date().isoformat()  # daily reports are facts of recent days


@dataclass(frozen=True)
class Call:
    method: str
    route: str  # as declared, to match the app's routes
    url: str
    roles: frozenset[Role]
    body: Callable[[str], Any] | None = None  # role -> body (ids differ per role)
    params: dict[str, str] = field(default_factory=dict)


def _visit(role: str) -> dict[str, Any]:
    return item(f"v-{role}", "h1", datetime.now(UTC) - timedelta(minutes=1))


ACCESS = [
    Call(
        "POST",
        "/v1/campaigns",
        "/v1/campaigns",
        FIELD,
        lambda r: {
            "id": f"c-{r}",
            "node_id": "comm",
            "name": "排查",
            "starts_on": "2020-01-27",
            "due_on": "2020-01-31",
        },
    ),
    Call("GET", "/v1/campaigns/{campaign_id}", "/v1/campaigns/c-seed", VISIT_READERS),
    Call("POST", "/v1/visits", "/v1/visits", FIELD, _visit),
    Call(
        "POST",
        "/v1/visits:batch",
        "/v1/visits:batch",
        FIELD,
        lambda r: {"items": [_visit(f"batch-{r}")]},
    ),
    Call("GET", "/v1/visits/{visit_id}", "/v1/visits/v-seed", VISIT_READERS),
    Call(
        "POST",
        "/v1/visits/{visit_id}/void",
        "/v1/visits/v-void/void",
        AUDIT,
        lambda r: {"reason": "录入错误"},
    ),
    Call("GET", "/v1/households/{household_id}/visits", "/v1/households/h1/visits", VISIT_READERS),
    Call(
        "POST",
        "/v1/audits",
        "/v1/audits",
        AUDIT,
        lambda r: {"id": f"a-{r}", "visit_id": "v-seed", "verdict": "confirmed"},
    ),
    Call(
        "POST",
        "/v1/daily-reports",
        "/v1/daily-reports",
        FIELD,
        lambda r: {
            "id": f"r-{r}",
            "node_id": "g1",
            "day": ROLE_DAY,
            "zero": False,
            "figures": {f"由{r}填报": 1},
        },
    ),
    Call(
        "GET",
        "/v1/daily-reports",
        "/v1/daily-reports",
        REPORT_READERS,
        params={"node_id": "g1", "day": ROLE_DAY},
    ),
    Call(
        "GET",
        "/v1/daily-reports/completeness",
        "/v1/daily-reports/completeness",
        REPORT_READERS,
        params={"node_id": "comm", "day": ROLE_DAY},
    ),
]


def test_every_route_of_visits_and_reports_is_in_the_access_table() -> None:
    routes = {
        (m, r.path)
        for router in [*VISIT_ROUTERS, *REPORT_ROUTERS]
        for r in router.routes
        if isinstance(r, APIRoute)
        for m in r.methods or ()
    }
    assert routes == {(c.method, c.route) for c in ACCESS}


@pytest.fixture(scope="module")
async def role_stack(infra: Infra) -> AsyncIterator[Stack]:
    """One stack for the whole role table, seeded once."""
    async for s in start_stack(infra, ["registry", "screening"]):
        await seed(s)
        worker = s.token("grid_worker", sub="seed-worker")
        now = datetime.now(UTC) - timedelta(hours=1)
        for visit_id in ("v-seed", "v-void"):
            r = await s.screening.post("/v1/visits", headers=worker, json=item(visit_id, "h1", now))
            assert r.status_code == 201, r.text
        r = await s.screening.post(
            "/v1/campaigns",
            headers=worker,
            json={
                "id": "c-seed",
                "node_id": "comm",
                "name": "排查",
                "starts_on": "2020-01-27",
                "due_on": "2020-01-31",
            },
        )
        assert r.status_code == 201, r.text
        r = await s.screening.post(
            "/v1/daily-reports",
            headers=worker,
            json={"node_id": "g1", "day": ROLE_DAY, "zero": True},
        )
        assert r.status_code == 201, r.text
        yield s


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("call", ACCESS, ids=[f"{c.method} {c.route}" for c in ACCESS])
async def test_role_table(role_stack: Stack, call: Call, role: Role) -> None:
    r = await role_stack.screening.request(
        call.method,
        call.url,
        json=call.body(role.value) if call.body else None,
        params=call.params,
        headers=role_stack.token(role.value),
    )
    expected = "allowed" if role in call.roles else "denied"
    got = (
        "allowed"
        if r.status_code in (200, 201)
        else ("denied" if r.status_code == 403 else f"status {r.status_code}: {r.text}")
    )
    assert got == expected
