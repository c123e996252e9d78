"""Watch and quarantine, temperatures and care tasks over HTTP, with registry and screening
on real PostgreSQL and Kafka and the missed-slot scheduler running; and who may call what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.screening.api.care import ROUTERS as CARE_ROUTERS
from services.screening.api.watch import ROUTERS as WATCH_ROUTERS
from shared.auth import Role
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import grow

ZONE = ZoneInfo("Asia/Shanghai")
PERSONS = ["p1", "p2", "p3", "p4", "p-void"]


def national_id(n: int) -> str:
    first17 = f"11010519900101{n:03d}"
    return first17 + resident_id_check_digit(first17)


def local(day: date, hh: int, mm: int = 0) -> str:
    return datetime.combine(day, time(hh, mm), tzinfo=ZONE).isoformat()


def today() -> date:
    return datetime.now(ZONE).date()


async def seed(s: Stack) -> None:
    """Places, a household, five persons (one voided) and a carer, through the registry;
    then wait until screening's views hold them."""
    await grow(s)
    admin = s.token("admin")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/households", {"id": "h1", "parent_id": "b1", "door_number": "101"}),
        (
            "/v1/parties",
            {"id": "doctor-li", "kind": "person", "name": "李医生", "role": "medic"},
        ),
    ]
    calls += [
        (
            "/v1/persons",
            {
                "id": p,
                "household_id": "h1",
                "name": f"居民{i}",
                "document_number": national_id(i),
            },
        )
        for i, p in enumerate(PERSONS, start=1)
    ]
    for url, body in calls:
        r = await s.registry.post(url, headers=admin, json=body)
        assert r.status_code == 201, (url, r.text)
    r = await s.registry.post("/v1/persons/p-void/void", headers=admin, json={"reason": "重复登记"})
    assert r.status_code == 200, r.text

    async def views_ready() -> bool:
        for p in PERSONS[:-1]:
            if (await s.screening.get(f"/v1/watch/{p}", headers=admin)).status_code != 200:
                return False
        pool = s.apps["screening"].state.pool
        return bool(
            await pool.fetchval(
                "SELECT (SELECT voided FROM persons WHERE id = 'p-void')"
                " AND EXISTS (SELECT 1 FROM parties WHERE id = 'doctor-li')"
            )
        )

    await eventually(views_ready, message="screening never learned the people")


@pytest.fixture(scope="module")
async def ws(infra: Infra) -> AsyncIterator[Stack]:
    """One stack for the module (each test uses its own subjects), scheduler every 0.2 s."""
    async for s in start_stack(
        infra, ["registry", "screening"], screening={"scheduler_interval": 0.2}
    ):
        await seed(s)
        yield s


async def count(stack: Stack, type_: str) -> int:
    pool = stack.apps["screening"].state.pool
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE type = $1", type_))


async def test_a_quarantine_is_ordered_extended_and_released(ws: Stack) -> None:
    medic = ws.token("medic", sub="medic-1")
    body = {
        "id": "q-p1",
        "subject_id": "p1",
        "type": "home",
        "place": "幸福小区1栋101",
        "planned_end": (today() + timedelta(days=14)).isoformat(),
        "carer_party_id": "doctor-li",
    }
    r = await ws.screening.post("/v1/quarantines", headers=medic, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"' and r.json()["status"] == "active"
    assert r.json()["node_id"] == "h1"
    again = await ws.screening.post("/v1/quarantines", headers=medic, json=body)
    assert again.status_code == 201 and again.headers["etag"] == '"1"'  # a retry writes nothing

    later = (today() + timedelta(days=21)).isoformat()
    stale = await ws.screening.post(
        "/v1/quarantines/q-p1/extend",
        json={"planned_end": later, "reason": "复检"},
        headers={**medic, "If-Match": '"7"'},
    )
    assert stale.status_code == 412
    earlier = await ws.screening.post(
        "/v1/quarantines/q-p1/extend",
        json={"planned_end": today().isoformat(), "reason": "复检"},
        headers=medic,
    )
    assert earlier.status_code == 422
    assert earlier.json()["errors"][0]["field"] == "body.planned_end"
    r = await ws.screening.post(
        "/v1/quarantines/q-p1/extend",
        json={"planned_end": later, "reason": "核酸复检未出结果"},
        headers={**medic, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["planned_end"] == later and r.json()["extensions"] == 1

    wrong = await ws.screening.post(
        "/v1/observations/p1/release", json={"reason": "x"}, headers=medic
    )
    assert wrong.status_code == 409
    assert wrong.json()["current_state"] == "quarantined"
    assert wrong.headers["content-type"] == "application/problem+json"

    r = await ws.screening.post(
        "/v1/quarantines/q-p1/release", json={"reason": "期满解除"}, headers=medic
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "released" and r.json()["end_reason"] == "期满解除"
    twice = await ws.screening.post(
        "/v1/quarantines/q-p1/release", json={"reason": "再次"}, headers=medic
    )
    assert twice.status_code == 409 and twice.json()["current_state"] == "released"

    w = await ws.screening.get("/v1/watch/p1", headers=ws.token("command"))
    assert w.status_code == 200
    assert w.json()["state"] == "released"
    assert [h["type"] for h in w.json()["history"]] == [
        "QuarantineOrdered",
        "QuarantineExtended",
        "QuarantineReleased",
    ]
    assert (await ws.screening.get("/v1/quarantines/nope", headers=medic)).status_code == 404


async def test_subjects_must_be_known_and_h_subjects_need_a_node(ws: Stack) -> None:
    medic = ws.token("medic")
    for subject, field in (
        ("p-void", "body.subject_id"),
        ("nobody", "body.subject_id"),
        ("h:" + "cd" * 32, "body.node_id"),
    ):
        r = await ws.screening.post("/v1/observations", headers=medic, json={"subject_id": subject})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field
    assert (await ws.screening.get("/v1/watch/nobody", headers=medic)).status_code == 404
    r = await ws.screening.post(
        "/v1/observations",
        headers=ws.token("grid_worker"),
        json={"subject_id": "h:" + "cd" * 32, "node_id": "g2"},
    )
    assert r.status_code == 201 and r.json()["state"] == "under_observation"
    assert r.json()["node_id"] == "g2"


async def test_a_temperature_batch_sent_twice_records_nothing_twice(ws: Stack) -> None:
    medic = ws.token("medic", sub="medic-2")
    r = await ws.screening.post(
        "/v1/quarantines",
        headers=medic,
        json={
            "id": "q-p2",
            "subject_id": "p2",
            "type": "home_medical",
            "starts_at": local(today() - timedelta(days=3), 7),
            "planned_end": (today() + timedelta(days=11)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    y = today() - timedelta(days=1)
    items = [
        {"id": "b-1", "subject_id": "p2", "celsius": 36.5, "occurred_at": local(y, 8, 30)},
        {"id": "b-2", "subject_id": "p2", "celsius": 37.6, "occurred_at": local(y, 16, 40)},
        {"id": "b-3", "subject_id": "p2", "celsius": 36.8, "occurred_at": local(y, 20, 15)},
        {"id": "b-4", "subject_id": "p2", "celsius": 51.0, "occurred_at": local(y, 9)},
        {"id": "b-5", "subject_id": "p2", "celsius": 36.6, "occurred_at": local(y, 6)},
        {"id": "b-6", "subject_id": "p4", "celsius": 36.6, "occurred_at": local(y, 9)},
        {"id": "b-7", "subject_id": "nobody", "celsius": 36.6, "occurred_at": local(y, 9)},
        {"id": "b-8", "subject_id": "p2", "celsius": 36.6},
    ]
    first = await ws.screening.post("/v1/temperatures:batch", headers=medic, json={"items": items})
    assert first.status_code == 200, first.text
    out = first.json()
    assert (out["received"], out["created"], out["unchanged"], out["errors"]) == (8, 3, 0, 5)
    by_id = {r["id"]: r for r in out["results"]}
    assert [by_id[i]["slot"] for i in ("b-1", "b-2", "b-3")] == [
        "08:00-10:00",
        "16:00-18:00",
        "16:00-18:00",
    ]
    assert by_id["b-1"]["slot_day"] == y.isoformat()
    assert (by_id["b-4"]["field"], by_id["b-4"]["refusal"]) == ("celsius", "invalid")
    assert (by_id["b-5"]["code"], by_id["b-5"]["field"]) == ("before-first-slot", "occurred_at")
    assert (by_id["b-6"]["code"], by_id["b-6"]["refusal"]) == ("not-under-watch", "conflict")
    assert (by_id["b-7"]["field"], by_id["b-7"]["refusal"]) == ("subject_id", "invalid")
    assert by_id["b-8"]["field"] == "occurred_at"
    recorded = await count(ws, "TemperatureRecorded")

    second = await ws.screening.post("/v1/temperatures:batch", headers=medic, json={"items": items})
    assert second.json()["created"] == 0 and second.json()["unchanged"] == 3
    assert await count(ws, "TemperatureRecorded") == recorded

    f = await ws.screening.get("/v1/watch/p2/follow-ups", headers=ws.token("integrator"))
    assert {r["reading_id"] for r in f.json()["readings"]} == {"b-1", "b-2", "b-3"}
    too_many = await ws.screening.post(
        "/v1/temperatures:batch", headers=medic, json={"items": [items[0]] * 5001}
    )
    assert too_many.status_code == 422


async def test_the_scheduler_marks_missed_slots_and_a_later_reading_is_late(ws: Stack) -> None:
    medic = ws.token("medic")
    two_days_ago = today() - timedelta(days=2)
    r = await ws.screening.post(
        "/v1/observations",
        headers=medic,
        json={
            "subject_id": "p3",
            "starts_at": local(two_days_ago, 7),
            "carer_party_id": "doctor-li",
        },
    )
    assert r.status_code == 201, r.text

    day = two_days_ago.isoformat()

    async def missed() -> bool:
        f = await ws.screening.get("/v1/watch/p3/follow-ups", headers=medic)
        slots = {(m["slot_day"], m["slot"]) for m in f.json()["missed"]}
        c = await ws.screening.get("/v1/care/p3", headers=medic)
        calls = {(m["slot_day"], m["task"]) for m in c.json()["missed"]}
        return {(day, "08:00-10:00"), (day, "16:00-18:00")} <= slots and (day, "call") in calls

    await eventually(missed, message="the scheduler never marked the missed slots")
    late = await ws.screening.post(
        "/v1/temperatures",
        headers=medic,
        json={
            "id": "late-1",
            "subject_id": "p3",
            "celsius": 36.9,
            "occurred_at": local(two_days_ago, 9, 15),
        },
    )
    assert late.status_code == 201, late.text
    assert (late.json()["slot"], late.json()["late"]) == ("08:00-10:00", True)
    # care: the observation's daily call was missed too, and is reported per carer
    c = await ws.screening.get("/v1/care/p3", headers=medic)
    assert c.json()["plan"] == {"call": ["08:00-20:00"]}
    calls = [m for m in c.json()["missed"] if m["slot_day"] == day]
    assert calls and calls[0]["party_id"] == "doctor-li"


async def test_care_tasks_and_place_plans(ws: Stack) -> None:
    worker = ws.token("grid_worker", sub="worker-1")
    r = await ws.screening.post(
        "/v1/care-tasks",
        headers=worker,
        json={
            "id": "t-1",
            "target_id": "p4",
            "task": "shopping",
            "occurred_at": local(today() - timedelta(days=1), 15),
            "notes": "代购药品",
        },
    )
    assert r.status_code == 201, r.text
    assert (r.json()["slot"], r.json()["target_kind"]) == ("00:00-24:00", "subject")
    plan = await ws.screening.post(
        "/v1/place-care-plans",
        headers=worker,
        json={"node_id": "b1", "task": "disinfection", "times_per_day": 3, "party_id": "doctor-li"},
    )
    assert plan.status_code == 201, plan.text
    assert plan.json()["slots"] == ["07:00-11:40", "11:40-16:20", "16:20-21:00"]
    batch = await ws.screening.post(
        "/v1/care-tasks:batch",
        headers=worker,
        json={
            "items": [
                {
                    "id": "t-2",
                    "target_id": "b1",
                    "task": "disinfection",
                    "occurred_at": datetime.now(ZONE).isoformat(),
                },
                {
                    "id": "t-3",
                    "target_id": "nowhere",
                    "task": "garbage",
                    "occurred_at": datetime.now(ZONE).isoformat(),
                },
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    statuses = [x["status"] for x in batch.json()["results"]]
    now_local = datetime.now(ZONE)
    assert statuses == ["created" if now_local.hour >= 7 else "error", "error"]
    c = await ws.screening.get("/v1/care/b1", headers=ws.token("auditor"))
    assert c.json()["target_kind"] == "place" and c.json()["plan"] == {
        "disinfection": ["07:00-11:40", "11:40-16:20", "16:20-21:00"]
    }


async def test_a_medic_out_of_scope_is_refused(ws: Stack) -> None:
    admin = ws.token("admin")
    r = await ws.screening.post(
        "/v1/quarantines",
        headers=admin,
        json={
            "id": "q-p4",
            "subject_id": "p4",
            "type": "home",
            "planned_end": (today() + timedelta(days=14)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    elsewhere = ws.token("medic", scope=["street-b"])
    reading = {"subject_id": "p4", "celsius": 36.6}
    assert (
        await ws.screening.post("/v1/temperatures", headers=elsewhere, json=reading)
    ).status_code == 403
    assert (await ws.screening.get("/v1/watch/p4", headers=elsewhere)).status_code == 403
    assert (await ws.screening.get("/v1/quarantines/q-p4", headers=elsewhere)).status_code == 403
    assert (
        await ws.screening.post(
            "/v1/quarantines/q-p4/release", json={"reason": "x"}, headers=elsewhere
        )
    ).status_code == 403
    batch = await ws.screening.post(
        "/v1/temperatures:batch",
        headers=elsewhere,
        json={"items": [{**reading, "id": "oos-1", "occurred_at": datetime.now(ZONE).isoformat()}]},
    )
    [result] = batch.json()["results"]
    assert (result["status"], result["refusal"]) == ("error", "forbidden")
    here = ws.token("medic", scope=["comm"])
    assert (await ws.screening.get("/v1/watch/p4", headers=here)).status_code == 200


# -- who may call what -----------------------------------------------------------------------

ALL = frozenset(Role)
WRITERS = frozenset({Role.ADMIN, Role.MEDIC})
OBSERVERS = WRITERS | {Role.GRID_WORKER}
CARERS = OBSERVERS
READERS = frozenset(
    {Role.ADMIN, Role.MEDIC, Role.GRID_WORKER, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR}
)
FUTURE = "2099-06-30"


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    url: Callable[[str], str]  # role -> url (per-role targets, so each allowed call succeeds)
    roles: frozenset[Role]
    body: Callable[[str], Any] | None = None


def _now() -> str:
    return datetime.now(ZONE).isoformat()


def _yesterday_morning() -> str:
    return local(today() - timedelta(days=1), 9)


ACCESS = [
    Call(
        "POST",
        "/v1/observations",
        lambda r: "/v1/observations",
        OBSERVERS,
        lambda r: {"subject_id": f"h:obs-{r}", "node_id": "g1"},
    ),
    Call(
        "POST",
        "/v1/observations/{subject_id}/release",
        lambda r: f"/v1/observations/h:rel-{r}/release",
        WRITERS,
        lambda r: {"reason": "解除"},
    ),
    Call(
        "POST",
        "/v1/observations/{subject_id}/transfer",
        lambda r: f"/v1/observations/h:tr-{r}/transfer",
        WRITERS,
        lambda r: {"to": "hospital", "destination": "县医院"},
    ),
    Call(
        "POST",
        "/v1/quarantines",
        lambda r: "/v1/quarantines",
        WRITERS,
        lambda r: {
            "id": f"q-{r}",
            "subject_id": f"h:q-{r}",
            "node_id": "g1",
            "type": "home",
            "planned_end": FUTURE,
        },
    ),
    Call("GET", "/v1/quarantines/{quarantine_id}", lambda r: "/v1/quarantines/q-read", READERS),
    Call(
        "POST",
        "/v1/quarantines/{quarantine_id}/extend",
        lambda r: f"/v1/quarantines/qx-{r}/extend",
        WRITERS,
        lambda r: {"planned_end": "2099-12-31", "reason": "延长"},
    ),
    Call(
        "POST",
        "/v1/quarantines/{quarantine_id}/release",
        lambda r: f"/v1/quarantines/qr-{r}/release",
        WRITERS,
        lambda r: {"reason": "解除"},
    ),
    Call(
        "POST",
        "/v1/quarantines/{quarantine_id}/transfer",
        lambda r: f"/v1/quarantines/qt-{r}/transfer",
        WRITERS,
        lambda r: {"to": "centralized", "destination": "隔离酒店"},
    ),
    Call("GET", "/v1/watch/{subject_id}", lambda r: "/v1/watch/h:read", READERS),
    Call(
        "GET", "/v1/watch/{subject_id}/follow-ups", lambda r: "/v1/watch/h:read/follow-ups", READERS
    ),
    Call(
        "POST",
        "/v1/temperatures",
        lambda r: "/v1/temperatures",
        WRITERS,
        lambda r: {
            "id": f"t-{r}",
            "subject_id": "h:read",
            "celsius": 36.5,
            "occurred_at": _yesterday_morning(),
        },
    ),
    Call(
        "POST",
        "/v1/temperatures:batch",
        lambda r: "/v1/temperatures:batch",
        WRITERS,
        lambda r: {
            "items": [
                {
                    "id": f"tb-{r}",
                    "subject_id": "h:read",
                    "celsius": 36.5,
                    "occurred_at": _yesterday_morning(),
                }
            ]
        },
    ),
    Call(
        "POST",
        "/v1/care-tasks",
        lambda r: "/v1/care-tasks",
        CARERS,
        lambda r: {"id": f"c-{r}", "target_id": "h:read", "task": "counselling"},
    ),
    Call(
        "POST",
        "/v1/care-tasks:batch",
        lambda r: "/v1/care-tasks:batch",
        CARERS,
        lambda r: {
            "items": [{"id": f"cb-{r}", "target_id": "g1", "task": "other", "occurred_at": _now()}]
        },
    ),
    Call(
        "POST",
        "/v1/place-care-plans",
        lambda r: "/v1/place-care-plans",
        CARERS,
        lambda r: {"node_id": "b1", "task": "garbage", "times_per_day": 1, "party_id": "doctor-li"},
    ),
    Call("GET", "/v1/care/{target_id}", lambda r: "/v1/care/h:read", READERS),
]


def test_every_watch_and_care_route_is_in_the_access_table() -> None:
    from fastapi.routing import APIRoute

    routes = {
        (m, r.path)
        for router in [*WATCH_ROUTERS, *CARE_ROUTERS]
        for r in router.routes
        if isinstance(r, APIRoute)
        for m in r.methods or ()
    }
    assert routes == {(c.method, c.route) for c in ACCESS}


@pytest.fixture(scope="module")
async def roles_seeded(ws: Stack) -> Stack:
    """Per-role subjects and quarantines, so that every allowed call can succeed."""
    admin = ws.token("admin")
    since = datetime.now(ZONE).isoformat()
    res = await ws.screening.post(
        "/v1/quarantines",
        headers=admin,
        json={
            "id": "q-read",
            "subject_id": "h:read",
            "node_id": "g1",
            "type": "home",
            "starts_at": local(today() - timedelta(days=2), 7),
            "planned_end": FUTURE,
        },
    )
    assert res.status_code == 201, res.text
    for role in Role:
        r = role.value
        for subject in (f"h:rel-{r}", f"h:tr-{r}"):
            res = await ws.screening.post(
                "/v1/observations",
                headers=admin,
                json={"subject_id": subject, "node_id": "g1", "starts_at": since},
            )
            assert res.status_code == 201, res.text
        for q in (f"qx-{r}", f"qr-{r}", f"qt-{r}"):
            res = await ws.screening.post(
                "/v1/quarantines",
                headers=admin,
                json={
                    "id": q,
                    "subject_id": f"h:{q}",
                    "node_id": "g1",
                    "type": "home",
                    "starts_at": since,
                    "planned_end": FUTURE,
                },
            )
            assert res.status_code == 201, res.text
    return ws


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("call", ACCESS, ids=[f"{c.method} {c.route}" for c in ACCESS])
async def test_role_table(roles_seeded: Stack, call: Call, role: Role) -> None:
    s = roles_seeded
    r = await s.screening.request(
        call.method,
        call.url(role.value),
        json=call.body(role.value) if call.body else None,
        headers=s.token(role.value),
    )
    expected = "allowed" if role in call.roles else "denied"
    ok = r.status_code in (200, 201) and not (call.route.endswith(":batch") and r.json()["errors"])
    got = "allowed" if ok else ("denied" if r.status_code == 403 else f"{r.status_code}: {r.text}")
    assert got == expected
