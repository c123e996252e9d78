"""Risk areas, inquiries, key persons (重点人员), tests (核酸) and vaccination over HTTP, on
registry + screening with real PostgreSQL and Kafka.

The people: 张三 (p1) and 李四 (p2) live in h1 under 幸福社区 (comm, street-a); 王五 (p3) lives
in h2 under street-b. 武汉 (4201) is a risk area; inquiries are made on 2020-02-01 in 金堂.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.screening.handlers.key_persons import flag_key_person
from services.screening.handlers.reactions import Reactions
from services.screening.main import create_app
from shared.auth import Role
from shared.contracts.screening import TemperatureRecorded
from shared.db import create_pool
from shared.envelope import utc_now
from shared.eventstore import COLUMNS, CommandContext, PendingEvent, append, row_to_envelope
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_places import grow

ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")
LI = "22010219851231456" + resident_id_check_digit("22010219851231456")
WANG = "51012119700505123" + resident_id_check_digit("51012119700505123")
ASKED = "2020-02-01T10:00:00+08:00"
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
WIDE_HORIZON = {"fact_horizon_days": 3650}


@dataclass
class World:
    stack: Stack
    pool: Any

    @property
    def screening(self) -> Any:
        return self.stack.screening

    def token(self, *roles: str, scope: list[str] | None = None) -> dict[str, str]:
        return self.stack.token(*roles, scope=scope, sub=f"{roles[0]}-1")


@pytest.fixture
async def screening_stack(infra: Infra) -> AsyncIterator[Stack]:
    """Registry and screening, with a fact horizon wide enough for the story's 2020 days."""
    async for s in start_stack(infra, ["registry", "screening"], screening=WIDE_HORIZON):
        yield s


@pytest.fixture
async def world(screening_stack: Stack, infra: Infra) -> AsyncIterator[World]:
    s = screening_stack
    await grow(s)
    admin = s.token("admin")
    for body in (
        {"id": "h1", "parent_id": "b1", "door_number": "101"},
        {"id": "h2", "parent_id": "street-b", "door_number": "1"},
    ):
        r = await s.registry.post("/v1/households", headers=admin, json=body)
        assert r.status_code == 201, r.text
    for pid, household, name, number in (
        ("p1", "h1", "张三", ZHANG),
        ("p2", "h1", "李四", LI),
        ("p3", "h2", "王五", WANG),
    ):
        r = await s.registry.post(
            "/v1/persons",
            headers=admin,
            json={"id": pid, "household_id": household, "name": name, "document_number": number},
        )
        assert r.status_code == 201, r.text
    pool = await create_pool(infra.pg_dsn, s.apps["screening"].state.settings.schema_name)

    async def people_seen() -> bool:
        n = await pool.fetchval(
            "SELECT count(*) FROM persons p JOIN places pl ON pl.id = p.household_id"
        )
        return bool(n == 3)

    try:
        await eventually(people_seen, message="screening never saw the people")
        yield World(s, pool)
    finally:
        await pool.close()


async def declare_wuhan(w: World) -> None:
    r = await w.screening.post(
        "/v1/risk-areas",
        headers=w.token("command"),
        json={
            "id": "wuhan",
            "name": "湖北省武汉市",
            "region_codes": ["4201"],
            "valid_from": "2020-01-01",
        },
    )
    assert r.status_code == 201, r.text


def stop(left_on: str, code: str = "420100") -> dict[str, Any]:
    return {"place": "湖北省武汉市", "region_code": code, "left_on": left_on}


async def inquire(w: World, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return await w.screening.post(
        "/v1/inquiries",
        headers=headers or w.token("grid_worker", scope=["comm"]),
        json={"occurred_at": ASKED, **body},
    )


async def history(w: World, subject: str) -> list[dict[str, Any]]:
    r = await w.screening.get(f"/v1/key-persons/{subject}", headers=w.token("admin"))
    assert r.status_code == 200, r.text
    return list(r.json()["history"])


async def test_a_stop_given_by_place_name_alone_is_placed_and_an_unplaceable_one_flagged(
    world: World,
) -> None:
    w = world
    r = await w.screening.post(
        "/v1/risk-areas",
        headers=w.token("command"),
        json={
            "id": "wuhan",
            "name": "武汉",
            "region_codes": ["420100"],
            "valid_from": "2020-01-01",
        },
    )
    assert r.status_code == 201, r.text
    named = await inquire(
        w,
        id="inq-name",
        person_id="p1",
        travel=[{"place": "湖北省武汉市", "left_on": "2020-01-25"}],
    )
    assert named.status_code == 201, named.text
    assert named.json()["matched_reasons"] == ["returnee_risk_area"]
    assert named.json()["flagged_reasons"] == ["returnee_risk_area"]
    assert named.json()["travel_resolution"] == [
        {
            "status": "resolved",
            "division": {"region_code": "420100", "name": "湖北省武汉市"},
            "candidates": [],
        }
    ]
    gulou = await inquire(
        w, id="inq-gulou", person_id="p2", travel=[{"place": "鼓楼区", "left_on": "2020-01-25"}]
    )
    assert gulou.status_code == 201, gulou.text
    assert gulou.json()["matched_reasons"] == ["unresolved_travel"]
    [placed] = gulou.json()["travel_resolution"]
    assert placed["status"] == "ambiguous" and placed["division"] is None
    assert [c["region_code"] for c in placed["candidates"]] == [
        "320106",
        "320302",
        "350102",
        "410204",
    ]
    again = await w.screening.get("/v1/inquiries/inq-gulou", headers=w.token("admin"))
    assert again.json()["travel_resolution"] == gulou.json()["travel_resolution"]
    kp = await w.screening.get("/v1/key-persons/p2", headers=w.token("admin"))
    assert kp.status_code == 200 and kp.json()["reasons"] == ["unresolved_travel"]
    published = await w.pool.fetchval(
        "SELECT schema_version FROM events WHERE type = 'KeyPersonFlagged' AND stream_id = 'kp:p2'"
    )
    assert published == 2


async def test_a_returnee_within_the_window_is_flagged_once_listed_in_scope_and_cleared(
    world: World,
) -> None:
    w = world
    await declare_wuhan(w)
    flagged = await inquire(w, id="inq-1", person_id="p1", travel=[stop("2020-01-25")])
    assert flagged.status_code == 201, flagged.text
    assert flagged.json()["flagged_reasons"] == ["returnee_risk_area"]
    assert flagged.json()["inquirer"] == "grid_worker-1" and flagged.json()["day"] == "2020-02-01"
    # left 18 days before the inquiry: outside the 14-day window
    old = await inquire(w, id="inq-2", person_id="p2", travel=[stop("2020-01-14")])
    assert old.status_code == 201 and old.json()["matched_reasons"] == []

    worker = w.token("grid_worker", scope=["comm"])
    listed = await w.screening.get("/v1/key-persons", params={"node_id": "comm"}, headers=worker)
    assert listed.status_code == 200, listed.text
    [p1] = listed.json()["items"]
    assert p1["subject_id"] == "p1" and p1["node_id"] == "h1"
    assert p1["reasons"] == ["returnee_risk_area"] and p1["name_masked"] == "张*"
    assert ZHANG not in listed.text and "张三" not in listed.text

    elsewhere = w.token("grid_worker", scope=["street-b"])
    assert (
        await w.screening.get("/v1/key-persons", params={"node_id": "comm"}, headers=elsewhere)
    ).status_code == 403
    assert (await w.screening.get("/v1/key-persons/p1", headers=elsewhere)).status_code == 403
    mine = await w.screening.get("/v1/key-persons", headers=elsewhere)
    assert mine.status_code == 200 and mine.json()["items"] == []
    assert (
        await inquire(w, elsewhere, id="inq-x", person_id="p1", close_contact=True)
    ).status_code == 403

    # the same inquiry again, and a new one with nothing new: no second flag
    again = await inquire(w, id="inq-1", person_id="p1", travel=[stop("2020-01-25")])
    assert again.status_code == 201 and again.json()["flagged_reasons"] == ["returnee_risk_area"]
    same = await inquire(w, id="inq-3", person_id="p1", travel=[stop("2020-01-26")])
    assert same.json()["matched_reasons"] == ["returnee_risk_area"]
    assert same.json()["flagged_reasons"] == []
    assert len(await history(w, "p1")) == 1
    contact = await inquire(w, id="inq-4", person_id="p1", close_contact=True)
    assert contact.json()["flagged_reasons"] == ["close_contact"]

    medic = w.token("medic", scope=["comm"])
    cleared = await w.screening.post(
        "/v1/key-persons/p1/clear", json={"reason": "居家观察14天期满"}, headers=medic
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["status"] == "cleared" and cleared.headers["etag"] == '"3"'
    twice = await w.screening.post(
        "/v1/key-persons/p1/clear", json={"reason": "again"}, headers=medic
    )
    assert twice.status_code == 409
    never = await w.screening.post("/v1/key-persons/p2/clear", json={"reason": "x"}, headers=medic)
    assert never.status_code == 409
    nobody = await w.screening.post(
        "/v1/key-persons/p404/clear", json={"reason": "x"}, headers=w.token("admin")
    )
    assert nobody.status_code == 404
    assert (
        await w.screening.get("/v1/key-persons", params={"node_id": "comm"}, headers=worker)
    ).json()["items"] == []
    back = await inquire(w, id="inq-5", person_id="p1", temperature=38.2)
    assert back.json()["flagged_reasons"] == ["fever"]
    steps = [(e["type"], e["reasons"] or e["reason"]) for e in await history(w, "p1")]
    assert steps == [
        ("KeyPersonFlagged", ["returnee_risk_area"]),
        ("KeyPersonFlagged", ["close_contact"]),
        ("KeyPersonCleared", "居家观察14天期满"),
        ("KeyPersonFlagged", ["fever"]),
    ]
    unknown = await inquire(w, id="inq-6", person_id="p404")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.person_id"


async def test_rules_changed_at_runtime_change_the_next_inquiry(world: World) -> None:
    w = world
    before = await inquire(w, id="inq-1", person_id="p1", temperature=37.1)
    assert before.json()["matched_reasons"] == []
    not_everywhere = await w.screening.put(
        "/v1/key-person-rules",
        json={"fever_threshold": 37.0, "look_back_days": 14},
        headers=w.token("admin", scope=["root"]),
    )
    assert not_everywhere.status_code == 403
    changed = await w.screening.put(
        "/v1/key-person-rules",
        json={"fever_threshold": 37.0, "look_back_days": 14},
        headers={**w.token("admin"), "If-Match": '"0"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["fever_threshold"] == 37.0 and changed.headers["etag"] == '"1"'
    stale = await w.screening.put(
        "/v1/key-person-rules",
        json={"fever_threshold": 37.5, "look_back_days": 14},
        headers={**w.token("admin"), "If-Match": '"0"'},
    )
    assert stale.status_code == 412
    after = await inquire(w, id="inq-2", person_id="p2", temperature=37.1)
    assert after.json()["flagged_reasons"] == ["fever"]
    rules = await w.screening.get("/v1/key-person-rules", headers=w.token("integrator"))
    assert rules.json()["changed_by"] == "admin-1" and rules.json()["version"] == 1


async def test_risk_areas_by_day_and_retries_by_idempotency_key(world: World) -> None:
    w = world
    await declare_wuhan(w)
    by_day = {"active_on": "2020-02-01"}
    active = await w.screening.get("/v1/risk-areas", params=by_day, headers=w.token("gatekeeper"))
    assert [a["id"] for a in active.json()["items"]] == ["wuhan"]
    lifted = await w.screening.post(
        "/v1/risk-areas/wuhan/lift",
        json={"lifted_on": "2020-04-08", "reason": "武汉解封"},
        headers={**w.token("admin"), "If-Match": '"1"'},
    )
    assert lifted.status_code == 200 and lifted.headers["etag"] == '"2"'
    for day, ids in (("2020-04-07", ["wuhan"]), ("2020-04-08", [])):
        r = await w.screening.get(
            "/v1/risk-areas", params={"active_on": day}, headers=w.token("integrator")
        )
        assert [a["id"] for a in r.json()["items"]] == ids
    # a stay in 武汉 from the day of the lift on flags nobody
    after = await inquire(
        w,
        person_id="p2",
        travel=[{**stop("2020-04-10"), "arrived_on": "2020-04-08"}],
        occurred_at="2020-04-12T09:00:00+08:00",
    )
    assert after.status_code == 201 and after.json()["matched_reasons"] == []

    retry = {**w.token("grid_worker", scope=["comm"]), "Idempotency-Key": "upload-7"}
    first = await inquire(w, retry, person_id="p1", close_contact=True)
    second = await inquire(w, retry, person_id="p1", close_contact=True)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["flagged_reasons"] == second.json()["flagged_reasons"] == ["close_contact"]
    inquiries = await w.pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1", f"inquiry:{first.json()['id']}"
    )
    assert inquiries == 1 and len(await history(w, "p1")) == 1


async def test_an_offline_batch_answers_per_item_and_records_nothing_twice(world: World) -> None:
    w = world
    await declare_wuhan(w)
    items = [
        {"id": "b-1", "person_id": "p1", "travel": [stop("2020-01-30")], "occurred_at": ASKED},
        {"id": "b-2", "person_id": "p2", "temperature": 36.5, "occurred_at": ASKED},
        {"id": "b-3", "person_id": "p404", "occurred_at": ASKED},
        {"id": "b-4", "person_id": "p3", "occurred_at": ASKED},
        {"id": "b-5", "person_id": "p2", "temperature": 52, "occurred_at": ASKED},
        {"id": "b-6", "person_id": "p2", "occurred_at": "2099-01-01T00:00:00+08:00"},
        {"id": "b-1", "person_id": "p1", "close_contact": True, "occurred_at": ASKED},
    ]
    worker = w.token("grid_worker", scope=["comm"])
    first = await w.screening.post("/v1/inquiries:batch", json={"items": items}, headers=worker)
    assert first.status_code == 200, first.text
    body = first.json()
    outcome = [(r["id"], r["status"], r["field"]) for r in body["results"]]
    assert outcome == [
        ("b-1", "created", None),
        ("b-2", "created", None),
        ("b-3", "error", "person_id"),
        ("b-4", "error", "person_id"),
        ("b-5", "error", "temperature"),
        ("b-6", "error", "occurred_at"),
        ("b-1", "error", "id"),
    ]
    assert body["results"][0]["flagged_reasons"] == ["returnee_risk_area"]
    assert body["results"][3]["code"] == "out-of-scope"
    assert (body["created"], body["unchanged"], body["errors"]) == (2, 0, 5)
    count = "SELECT count(*) FROM events WHERE stream_id LIKE 'inquiry:%' OR stream_id LIKE 'kp:%'"
    stored = await w.pool.fetchval(count)
    assert stored == 3
    again = await w.screening.post("/v1/inquiries:batch", json={"items": items}, headers=worker)
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 2)
    assert await w.pool.fetchval(count) == stored
    too_many = await w.screening.post(
        "/v1/inquiries:batch", json={"items": [items[0]] * 5001}, headers=worker
    )
    assert too_many.status_code == 422

    # inquiries racing on one person's key-person stream: each decides again on the others'
    answers = [
        {"close_contact": True},
        {"temperature": 38.0},
        {"symptoms": ["乏力"]},
        {"travel": [stop("2020-01-31")]},
    ]
    raced = await asyncio.gather(
        *(inquire(w, id=f"race-{n}", person_id="p2", **a) for n, a in enumerate(answers))
    )
    assert [r.status_code for r in raced] == [201] * 4
    flagged = [reason for e in await history(w, "p2") for reason in e["reasons"]]
    assert sorted(flagged) == ["close_contact", "fever", "returnee_risk_area", "symptoms"]


async def test_tests_coverage_vaccination_and_a_positive_flagged_once_by_the_reaction(
    world: World,
) -> None:
    w = world
    medic = w.token("medic", scope=["comm"])
    r = await w.screening.post(
        "/v1/test-rounds",
        headers=medic,
        json={
            "id": "r1",
            "node_id": "comm",
            "number": 1,
            "starts_on": str(TODAY - timedelta(1)),
            "ends_on": str(TODAY + timedelta(1)),
        },
    )
    assert r.status_code == 201, r.text
    taken = await w.screening.post(
        "/v1/test-rounds",
        headers=medic,
        json={
            "id": "r1-bis",
            "node_id": "comm",
            "number": 1,
            "starts_on": str(TODAY),
            "ends_on": str(TODAY),
        },
    )
    assert taken.status_code == 409
    s1 = await w.screening.post(
        "/v1/samples", headers=medic, json={"id": "s1", "person_id": "p1", "round_id": "r1"}
    )
    assert s1.status_code == 201, s1.text
    now = datetime.now(ZoneInfo("Asia/Shanghai")).isoformat()
    batch = await w.screening.post(
        "/v1/samples:batch",
        headers=medic,
        json={
            "items": [
                {"id": "s1", "person_id": "p1", "round_id": "r1", "occurred_at": now},
                {"id": "s2", "person_id": "p2", "round_id": "r1", "occurred_at": now},
                {"id": "s3", "person_id": "p2", "round_id": "nope", "occurred_at": now},
                {
                    "id": "s4",
                    "person_id": "p2",
                    "round_id": "r1",
                    "occurred_at": "2020-02-01T10:00:00+08:00",
                },
            ]
        },
    )
    assert [(x["status"], x["field"]) for x in batch.json()["results"]] == [
        ("unchanged", None),
        ("created", None),
        ("error", "round_id"),
        ("error", "round_id"),
    ]
    result = await w.screening.post(
        "/v1/samples/s1/result", headers=medic, json={"result": "positive"}
    )
    assert result.status_code == 200 and result.json()["result"] == "positive"
    assert (
        await w.screening.post("/v1/samples/s1/result", headers=medic, json={"result": "positive"})
    ).status_code == 200
    assert (
        await w.screening.post("/v1/samples/s1/result", headers=medic, json={"result": "negative"})
    ).status_code == 409
    assert (
        await w.screening.post(
            "/v1/samples/s404/result", headers=medic, json={"result": "negative"}
        )
    ).status_code == 404

    round1 = await w.screening.get("/v1/test-rounds/r1", headers=w.token("command"))
    assert round1.json()["coverage"] == {
        "persons": 2,
        "sampled": 2,
        "not_sampled": 0,
        "coverage_pct": 100.0,
        "samples": 2,
        "resulted": 1,
        "positive": 1,
    }

    async def flagged_positive() -> list[dict[str, Any]] | None:
        r = await w.screening.get("/v1/key-persons/p1", headers=w.token("admin"))
        return r.json()["history"] if r.status_code == 200 else None

    [flag] = await eventually(flagged_positive, message="the positive result never flagged p1")
    assert (flag["reasons"], flag["source"], flag["source_id"]) == (["positive_test"], "test", "s1")
    assert flag["actor"] == "screening.reactions"

    first = await w.screening.post(
        "/v1/vaccinations",
        headers=medic,
        json={"person_id": "p1", "dose_number": 1, "vaccine": "北京生物"},
    )
    assert first.status_code == 201, first.text
    again = await w.screening.post(
        "/v1/vaccinations",
        headers=medic,
        json={"person_id": "p1", "dose_number": 1, "vaccine": "北京生物"},
    )
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    skipped = await w.screening.post(
        "/v1/vaccinations",
        headers=medic,
        json={"person_id": "p1", "dose_number": 3, "vaccine": "北京生物"},
    )
    assert skipped.status_code == 422 and skipped.json()["errors"][0]["field"] == "body.dose_number"
    second = await w.screening.post(
        "/v1/vaccinations",
        headers=medic,
        json={"id": "d-2", "person_id": "p1", "dose_number": 2, "vaccine": "北京生物"},
    )
    assert second.status_code == 201 and second.json()["id"] == "d-2"


async def test_a_fever_reading_flags_through_the_reaction_and_a_rerun_writes_nothing(
    world: World,
) -> None:
    """Another engineer's command records readings; here they are appended directly."""
    w = world

    def reading(version: int, celsius: float) -> PendingEvent:
        return PendingEvent(
            "reading-test:p2",
            "reading",
            version,
            TemperatureRecorded(
                reading_id=f"r-{version}",
                subject_id="p2",
                celsius=celsius,
                slot_day=TODAY,
                slot="08:00-10:00",
                recorded_by="medic-1",
            ),
            utc_now(),
            "h1",
        )

    async with w.pool.acquire() as conn, conn.transaction():
        await append(conn, [reading(1, 37.2), reading(2, 37.3)], CommandContext(actor="medic-1"))

    async def flagged() -> list[dict[str, Any]] | None:
        r = await w.screening.get("/v1/key-persons/p2", headers=w.token("admin"))
        return r.json()["history"] if r.status_code == 200 else None

    [flag] = await eventually(flagged, message="the fever reading never flagged p2")
    assert (flag["reasons"], flag["source"], flag["source_id"]) == (["fever"], "temperature", "r-2")
    row = await w.pool.fetchrow(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = 'reading-test:p2' AND version = 2"
    )
    envelope = row_to_envelope(row)
    # the consumer re-reading the event: the same command id answers with what it wrote first
    for _ in range(2):
        async with w.pool.acquire() as conn, conn.transaction():
            await Reactions(w.pool)(conn, [envelope])
    written = await w.pool.fetchval(
        "SELECT count(*) FROM events WHERE command_id = $1", f"reaction:{envelope.event_id}"
    )
    assert written == 1
    assert len(await history(w, "p2")) == 1


# -- who may call what ------------------------------------------------------------------------

EVERYONE = frozenset(Role)
DECLARERS = frozenset({Role.ADMIN, Role.COMMAND})
INQUIRERS = frozenset({Role.ADMIN, Role.GRID_WORKER, Role.MEDIC})
READERS = frozenset(
    {Role.ADMIN, Role.GRID_WORKER, Role.MEDIC, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR}
)
MEDICS = frozenset({Role.ADMIN, Role.MEDIC})


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    url: str
    roles: frozenset[Role]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    ok: frozenset[int] = frozenset({200, 201})


ACCESS = [
    Call(
        "POST",
        "/v1/risk-areas",
        "/v1/risk-areas",
        DECLARERS,
        {"id": "hubei", "name": "湖北省", "region_codes": ["42"], "valid_from": "2020-01-01"},
    ),
    Call(
        "POST",
        "/v1/risk-areas/{area_id}/lift",
        "/v1/risk-areas/hubei/lift",
        DECLARERS,
        {"lifted_on": "2020-03-25", "reason": "湖北解封"},
    ),
    Call("GET", "/v1/risk-areas", "/v1/risk-areas", EVERYONE, params={"active_on": "2020-02-01"}),
    Call("GET", "/v1/risk-areas/{area_id}", "/v1/risk-areas/hubei", EVERYONE),
    Call("GET", "/v1/key-person-rules", "/v1/key-person-rules", EVERYONE),
    Call(
        "PUT",
        "/v1/key-person-rules",
        "/v1/key-person-rules",
        frozenset({Role.ADMIN}),
        {"fever_threshold": 37.3, "look_back_days": 14},
    ),
    Call(
        "POST",
        "/v1/inquiries",
        "/v1/inquiries",
        INQUIRERS,
        {"id": "i-1", "person_id": "p1", "symptoms": ["咳嗽"], "occurred_at": ASKED},
    ),
    Call(
        "POST",
        "/v1/inquiries:batch",
        "/v1/inquiries:batch",
        INQUIRERS,
        {"items": [{"id": "i-2", "person_id": "p2", "occurred_at": ASKED}]},
    ),
    Call("GET", "/v1/inquiries/{inquiry_id}", "/v1/inquiries/i-1", READERS),
    Call("GET", "/v1/key-persons", "/v1/key-persons", READERS, params={"node_id": "comm"}),
    Call("GET", "/v1/key-persons/{subject_id}", "/v1/key-persons/p1", READERS),
    Call(
        "POST",
        "/v1/key-persons/{subject_id}/clear",
        "/v1/key-persons/p1/clear",
        MEDICS,
        {"reason": "期满"},
        ok=frozenset({200, 409}),
    ),
    Call(
        "POST",
        "/v1/test-rounds",
        "/v1/test-rounds",
        MEDICS,
        {
            "id": "tr-1",
            "node_id": "comm",
            "number": 1,
            "starts_on": str(TODAY),
            "ends_on": str(TODAY),
        },
    ),
    Call("GET", "/v1/test-rounds/{round_id}", "/v1/test-rounds/tr-1", READERS),
    Call(
        "POST",
        "/v1/samples",
        "/v1/samples",
        MEDICS,
        {"id": "sa-1", "person_id": "p1", "round_id": "tr-1"},
    ),
    Call(
        "POST",
        "/v1/samples:batch",
        "/v1/samples:batch",
        MEDICS,
        {"items": [{"id": "sa-2", "person_id": "p2", "occurred_at": ASKED}]},
    ),
    Call("GET", "/v1/samples/{sample_id}", "/v1/samples/sa-1", READERS),
    Call(
        "POST",
        "/v1/samples/{sample_id}/result",
        "/v1/samples/sa-1/result",
        MEDICS,
        {"result": "negative"},
    ),
    Call(
        "POST",
        "/v1/vaccinations",
        "/v1/vaccinations",
        MEDICS,
        {"id": "v-1", "person_id": "p1", "dose_number": 1, "vaccine": "科兴"},
    ),
]
MINE = (
    "/v1/risk-areas",
    "/v1/key-person",
    "/v1/inquiries",
    "/v1/test-rounds",
    "/v1/samples",
    "/v1/vaccinations",
)


def test_every_route_of_this_vertical_is_in_the_access_table() -> None:
    paths = create_app().openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(MINE)
        for method in operations
    }
    assert routes == {(c.method, c.route) for c in ACCESS}


async def test_role_table(world: World) -> None:
    """Each role on each endpoint, scoped to the whole system: allowed or 403. Roles run in
    `Role` order, so `admin` creates what the later calls read."""
    w = world
    for call in ACCESS:
        for role in Role:
            r = await w.screening.request(
                call.method,
                call.url,
                json=call.body,
                params=call.params,
                headers=w.token(role.value),
            )
            expected = "allowed" if role in call.roles else "denied"
            got = (
                "allowed"
                if r.status_code in call.ok
                else ("denied" if r.status_code == 403 else f"status {r.status_code}: {r.text}")
            )
            assert got == expected, (call.method, call.url, role.value)


async def test_a_referral_known_only_by_hmac_is_a_key_person_at_the_place_of_its_flag(
    world: World,
) -> None:
    """The checkpoint service's referral consumer will call `flag_key_person` like this."""
    w = world
    subject = "h:9f3c2a7e5b1d4c6a8e0f"
    outcome = await flag_key_person(
        w.pool,
        subject,
        ["checkpoint_referral"],
        "checkpoint",
        "crossing-1",
        "comm",
        document_masked="420106********1234",
        name_masked="赵*",
        ctx=CommandContext(actor="checkpoint", command_id="referral:crossing-1"),
    )
    assert outcome.version == 1
    worker = w.token("grid_worker", scope=["comm"])
    listed = await w.screening.get("/v1/key-persons", params={"node_id": "g1"}, headers=worker)
    assert listed.json()["items"] == []  # comm itself, not a place under g1
    listed = await w.screening.get("/v1/key-persons", params={"node_id": "comm"}, headers=worker)
    [referral] = listed.json()["items"]
    assert referral["subject_id"] == subject and referral["name_masked"] == "赵*"
    assert referral["reasons"] == ["checkpoint_referral"]
    elsewhere = w.token("grid_worker", scope=["street-b"])
    assert (
        await w.screening.get(f"/v1/key-persons/{subject}", headers=elsewhere)
    ).status_code == 403
