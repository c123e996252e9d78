"""Checkpoints over HTTP with registry, screening and checkpoint in-process on real PostgreSQL
and Kafka: closed compounds, quarantine breaches, referrals that reach screening, offline
uploads, shifts, the gate's register, and who may call what."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.checkpoint.main import create_app as checkpoint_app
from services.screening.handlers.referrals import Referrals
from shared.auth import Role
from shared.db import create_pool
from shared.envelope import utc_now
from shared.eventstore import COLUMNS, row_to_envelope
from shared.identity import hmac_key, id_hmac, resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack
from tests.e2e.test_places import grow

ZHANG = "11010519900101123" + resident_id_check_digit("11010519900101123")  # registered, h1
LI = "22010219851231456" + resident_id_check_digit("22010219851231456")  # not registered
WANG = "51012119700505123" + resident_id_check_digit("51012119700505123")  # not registered
ZHAO = "51012119880808234" + resident_id_check_digit("51012119880808234")  # temporary in h1
SUN = "51012119920303345" + resident_id_check_digit("51012119920303345")  # visitor in h1
PLATE = "吉A12345"
OPEN_POLICY = {"residents_only": False, "health_code_colours": ["green"]}
CLOSED_POLICY = {"residents_only": True, "health_code_colours": ["green"]}


@dataclass
class Gate:
    """The seeded world: a closed compound gate on `comm`, resident p1 with car-1 in h1."""

    stack: Stack
    pools: dict[str, Any]
    now: datetime
    opened_at: datetime
    closed_from: datetime
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Any:
        return self.stack.checkpoint

    def admin(self) -> dict[str, str]:
        return self.stack.token("admin")

    def keeper(self, sub: str = "gk-1", scope: str = "comm") -> dict[str, str]:
        return self.stack.token("gatekeeper", scope=[scope], sub=sub)

    async def cross(self, headers: dict[str, str] | None = None, **body: Any) -> Any:
        payload = {
            "checkpoint_id": "comm-gate",
            "direction": "in",
            "health_code": "green",
            "temperature": 36.5,
            **body,
        }
        if payload.get("kind", "person") == "person":
            payload.setdefault("document_number", ZHANG)
        return await self.checkpoint.post(
            "/v1/crossings", json=payload, headers=headers or self.keeper()
        )


async def _seen(pool: Any, sql: str, *args: Any) -> Any:
    return await eventually(lambda: pool.fetchval(sql, *args), message=sql)


@pytest.fixture
async def gate(gate_stack: Stack, infra: Infra) -> AsyncIterator[Gate]:
    s = gate_stack
    admin = s.token("admin")
    await grow(s)
    for url, body in [
        ("/v1/households", {"id": "h1", "parent_id": "b1", "door_number": "101"}),
        (
            "/v1/persons",
            {"id": "p1", "household_id": "h1", "name": "张三", "document_number": ZHANG},
        ),
        ("/v1/vehicles", {"id": "car-1", "household_id": "h1", "plate": PLATE}),
    ]:
        r = await s.registry.post(url, json=body, headers=admin)
        assert r.status_code == 201, r.text
    pools = {
        n: await create_pool(infra.pg_dsn, s.apps[n].state.settings.schema_name)
        for n in ("checkpoint", "screening")
    }
    now = utc_now()
    g = Gate(s, pools, now, now - timedelta(days=3), now - timedelta(days=1))
    try:
        # nodes travel in different partitions: wait for every place the tests use
        await _seen(
            pools["checkpoint"],
            "SELECT count(*) = 7 FROM places WHERE id = ANY($1::text[])",
            ["root", "street-a", "street-b", "comm", "g1", "g2", "b1"],
        )
        opened = await s.checkpoint.post(
            "/v1/checkpoints",
            headers=admin,
            json={
                "id": "comm-gate",
                "node_id": "comm",
                "name": "幸福社区北门",
                "level": "compound",
                "policy": OPEN_POLICY,
                "opened_at": g.opened_at.isoformat(),
            },
        )
        assert opened.status_code == 201, opened.text
        closed = await s.checkpoint.post(
            "/v1/checkpoints/comm-gate/policy",
            headers=admin,
            json={"policy": CLOSED_POLICY, "effective_from": g.closed_from.isoformat()},
        )
        assert closed.status_code == 200, closed.text
        shift = await s.checkpoint.post(
            "/v1/checkpoints/comm-gate/shifts",
            headers=admin,
            json={
                "id": "gk-1-now",
                "sub": "gk-1",
                "role": "property_guard",
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=11)).isoformat(),
            },
        )
        assert shift.status_code == 201, shift.text
        await _seen(pools["checkpoint"], "SELECT true FROM persons WHERE id = 'p1'")
        await _seen(pools["checkpoint"], "SELECT true FROM vehicles WHERE id = 'car-1'")
        await _seen(pools["checkpoint"], "SELECT true FROM places WHERE id = 'h1'")
        yield g
    finally:
        for p in pools.values():
            await p.close()


async def test_a_closed_compound_admits_residents_and_their_cars_and_turns_others_away(
    gate: Gate,
) -> None:
    stranger = await gate.cross(document_number=LI)
    assert stranger.status_code == 201, stranger.text
    assert (stranger.json()["decision"], stranger.json()["reasons"]) == ("deny", ["not_resident"])
    assert stranger.json()["subject_id"] is None and LI not in stranger.text
    resident = await gate.cross()
    assert (resident.json()["decision"], resident.json()["reasons"]) == ("admit", [])
    assert resident.json()["subject_id"] == "p1"
    assert resident.json()["document_masked"] == ZHANG[:6] + "********" + ZHANG[-4:]
    car = await gate.cross(
        kind="vehicle", plate="吉A 12345", passengers=[{"document_number": ZHANG}]
    )
    assert car.status_code == 201, car.text
    assert (car.json()["decision"], car.json()["plate"]) == ("admit", PLATE)
    unknown = await gate.cross(
        kind="vehicle", plate="吉B99999", passengers=[{"document_number": ZHANG}]
    )
    assert (unknown.json()["decision"], unknown.json()["reasons"]) == (
        "deny",
        ["vehicle_not_registered"],
    )

    # a retry answers with the first decision; a bad document is a 422 naming the field
    again = await gate.cross(id=resident.json()["id"])
    assert again.status_code == 201 and again.json() == resident.json()
    bad = await gate.cross(document_number=ZHANG[:-1] + ("1" if ZHANG[-1] == "0" else "0"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.document_number"

    # only a gatekeeper holding the current shift records, inside the jurisdiction
    off_duty = await gate.cross(headers=gate.keeper("gk-2"))
    assert off_duty.status_code == 403 and off_duty.json()["code"] == "no-shift"
    elsewhere = await gate.cross(headers=gate.keeper(scope="street-b"))
    assert elsewhere.status_code == 403

    # the gate's register of the day: pages in time order, and CSV with masked numbers only
    reader = gate.stack.token("command", scope=["comm"])
    day = resident.json()["day"]
    first = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/crossings", headers=reader, params={"date": day, "limit": 3}
    )
    assert first.status_code == 200, first.text
    rest = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/crossings",
        headers=reader,
        params={"date": day, "cursor": first.json()["next_cursor"]},
    )
    ids = [c["id"] for c in first.json()["items"] + rest.json()["items"]]
    assert len(ids) == 4 and rest.json()["next_cursor"] is None
    csv = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/crossings.csv", headers=reader, params={"date": day}
    )
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.removeprefix("\ufeff").strip().split("\r\n")
    assert lines[0].startswith("时间,方向,类型,证件类型,证件号码(脱敏),车牌,体温,健康码")
    assert len(lines) == 5 and ZHANG not in csv.text and "非本辖区居民" in csv.text
    same = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/crossings", headers=reader, params={"date": day, "format": "csv"}
    )
    assert same.text == csv.text


async def test_a_residents_only_gate_counts_the_residency_types_its_policy_names(
    gate: Gate,
) -> None:
    """Closed management (封闭管理): a registered visitor (访客) of a household under the gate
    is an outsider; a temporary resident (暂住) is a resident unless the policy says not."""
    for pid, number, residency in [("p-zhao", ZHAO, "temporary"), ("p-sun", SUN, "visitor")]:
        r = await gate.stack.registry.post(
            "/v1/persons",
            headers=gate.admin(),
            json={
                "id": pid,
                "household_id": "h1",
                "name": "赵四" if pid == "p-zhao" else "孙五",
                "document_number": number,
                "residency": residency,
            },
        )
        assert r.status_code == 201, r.text
    await _seen(
        gate.pools["checkpoint"],
        "SELECT count(*) = 2 FROM persons WHERE id = ANY($1::text[])",
        ["p-zhao", "p-sun"],
    )
    visitor = await gate.cross(document_number=SUN)
    assert (visitor.json()["decision"], visitor.json()["reasons"]) == (
        "deny",
        ["residency_visitor"],
    )
    assert visitor.json()["subject_id"] == "p-sun"
    temporary = await gate.cross(document_number=ZHAO)
    assert (temporary.json()["decision"], temporary.json()["reasons"]) == ("admit", [])

    owners_only = await gate.checkpoint.post(
        "/v1/checkpoints/comm-gate/policy",
        headers=gate.admin(),
        json={
            "policy": {**CLOSED_POLICY, "resident_types": ["resident"]},
            "effective_from": utc_now().isoformat(),
        },
    )
    assert owners_only.status_code == 200, owners_only.text
    refused = await gate.cross(document_number=ZHAO)
    assert (refused.json()["decision"], refused.json()["reasons"]) == (
        "deny",
        ["residency_temporary"],
    )
    assert (await gate.cross()).json()["decision"] == "admit"  # p1 is a resident

    # the register says which rule turned each away
    reader = gate.stack.token("command", scope=["comm"])
    csv = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/crossings.csv",
        headers=reader,
        params={"date": visitor.json()["day"]},
    )
    assert "访客不在放行范围" in csv.text and "暂住人员不在放行范围" in csv.text

    # a policy naming no residency type is refused naming the field
    empty = await gate.checkpoint.post(
        "/v1/checkpoints/comm-gate/policy",
        headers=gate.admin(),
        json={
            "policy": {**CLOSED_POLICY, "resident_types": []},
            "effective_from": utc_now().isoformat(),
        },
    )
    assert empty.status_code == 422, empty.text
    assert empty.json()["errors"][0]["field"] == "body.policy.resident_types"


async def test_a_quarantined_person_going_out_is_denied_and_the_breach_recorded(
    gate: Gate,
) -> None:
    medic = gate.stack.token("medic")

    async def ordered() -> Any:
        # screening must have learnt of p1 from the registry first
        r = await gate.stack.screening.post(
            "/v1/quarantines",
            headers=medic,
            json={
                "id": "q-p1",
                "subject_id": "p1",
                "type": "home",
                "starts_at": (gate.now - timedelta(hours=2)).isoformat(),
                "planned_end": (gate.now + timedelta(days=14)).date().isoformat(),
            },
        )
        return r if r.status_code == 201 else None

    await eventually(ordered, message="screening never ordered the quarantine")
    await _seen(
        gate.pools["checkpoint"],
        "SELECT true FROM watch_periods WHERE subject_id = 'p1' AND kind = 'quarantine'",
    )
    out = await gate.cross(direction="out")
    assert out.status_code == 201, out.text
    assert (out.json()["decision"], out.json()["reasons"]) == ("deny", ["under_quarantine"])
    assert out.json()["breaches"] == ["p1"]
    rows = await gate.pools["checkpoint"].fetch(
        "SELECT type, tx_id::text AS tx, data FROM events WHERE stream_id = $1 ORDER BY version",
        f"crossing:{out.json()['id']}",
    )
    assert [r["type"] for r in rows] == ["CrossingRecorded", "QuarantineBreachAttempted"]
    assert rows[0]["tx"] == rows[1]["tx"]  # one transaction
    assert rows[1]["data"]["subject_id"] == "p1"
    home = await gate.cross(direction="in")
    assert home.json()["decision"] == "admit" and home.json()["breaches"] == []


async def test_an_origin_named_in_part_matches_its_risk_area_and_an_unplaced_one_is_referred(
    gate: Gate,
) -> None:
    declared = await gate.stack.screening.post(
        "/v1/risk-areas",
        headers=gate.admin(),
        json={
            "id": "wuhan",
            "name": "湖北省武汉市",
            "region_codes": ["420100"],
            "valid_from": (gate.now - timedelta(days=30)).date().isoformat(),
        },
    )
    assert declared.status_code == 201, declared.text
    await _seen(gate.pools["checkpoint"], "SELECT true FROM risk_areas WHERE id = 'wuhan'")
    await _seen(gate.pools["screening"], "SELECT true FROM persons WHERE id = 'p1'")
    wuhan = await gate.cross(origin="武汉")
    assert wuhan.status_code == 201, wuhan.text
    assert (wuhan.json()["decision"], wuhan.json()["reasons"]) == ("refer", ["risk_area_origin"])
    elsewhere = await gate.cross(origin="四川省成都市")
    assert (elsewhere.json()["decision"], elsewhere.json()["reasons"]) == ("admit", [])
    gulou = await gate.cross(origin="鼓楼区")
    assert (gulou.json()["decision"], gulou.json()["reasons"]) == ("refer", ["unresolved_origin"])

    async def flagged_for_review() -> Any:
        r = await gate.stack.screening.get("/v1/key-persons/p1", headers=gate.admin())
        return r.status_code == 200 and "unresolved_travel" in r.json()["reasons"]

    await eventually(flagged_for_review, message="the unplaced origin never flagged p1")


async def test_risk_area_arrivals_are_referred_and_become_key_persons_in_screening(
    gate: Gate,
) -> None:
    declared = await gate.stack.screening.post(
        "/v1/risk-areas",
        headers=gate.admin(),
        json={
            "id": "wuhan",
            "name": "湖北省武汉市",
            "region_codes": ["4201"],
            "valid_from": (gate.now - timedelta(days=30)).date().isoformat(),
        },
    )
    assert declared.status_code == 201, declared.text
    await _seen(gate.pools["checkpoint"], "SELECT true FROM risk_areas WHERE id = 'wuhan'")
    await _seen(gate.pools["screening"], "SELECT true FROM persons WHERE id = 'p1'")
    registered = await gate.cross(origin="湖北省武汉市江汉区", origin_region_code="420103")
    assert (registered.json()["decision"], registered.json()["reasons"]) == (
        "refer",
        ["risk_area_origin"],
    )
    stranger = await gate.cross(document_number=LI, origin="湖北省武汉市")
    assert (stranger.json()["decision"], stranger.json()["reasons"]) == (
        "refer",
        ["risk_area_origin", "not_resident"],
    )

    reader = gate.stack.token("admin")
    hmac = id_hmac(hmac_key(gate.stack.settings.id_hmac_key), "resident_id", LI)

    async def key_person(subject: str) -> Any:
        r = await gate.stack.screening.get(f"/v1/key-persons/{subject}", headers=reader)
        return r.json() if r.status_code == 200 else None

    p1 = await eventually(lambda: key_person("p1"), message="p1 never became a key person")
    assert set(p1["reasons"]) == {"checkpoint_referral", "returnee_risk_area"}
    assert p1["node_id"] == "h1"
    unknown = await eventually(lambda: key_person(f"h:{hmac}"), message="no key person by hmac")
    assert unknown["document_masked"] == LI[:6] + "********" + LI[-4:]
    assert unknown["node_id"] == "comm"  # where the gate met them
    [flag] = [h for h in p1["history"] if h["type"] == "KeyPersonFlagged"]
    assert flag["source"] == "checkpoint" and flag["source_id"] == registered.json()["id"]

    # the same crossing delivered again (a relay re-publishing after a crash) flags nobody
    # twice, even after the flag was cleared in between: the referral's command id is stored
    cleared = await gate.stack.screening.post(
        "/v1/key-persons/p1/clear", headers=reader, json={"reason": "核实无异常"}
    )
    assert cleared.status_code == 200, cleared.text
    row = await gate.pools["checkpoint"].fetchrow(
        f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version = 1",
        f"crossing:{registered.json()['id']}",
    )
    flags = "SELECT count(*) FROM events WHERE type = 'KeyPersonFlagged'"
    before = await gate.pools["screening"].fetchval(flags)
    async with gate.pools["screening"].acquire() as conn:
        await Referrals(gate.pools["screening"])(conn, [row_to_envelope(row)])
    assert await gate.pools["screening"].fetchval(flags) == before


async def test_an_offline_upload_sent_twice_is_recorded_once_each_item_judged_as_of_its_time(
    gate: Gate,
) -> None:
    before_closing = gate.closed_from - timedelta(hours=12)
    items = [
        # the gate was open to everyone then: admitted, by residency as it is now
        {"id": "up-1", "occurred_at": before_closing.isoformat(), "document_number": LI},
        {
            "id": "up-2",
            "occurred_at": (gate.now - timedelta(minutes=1)).isoformat(),
            "document_number": LI,
        },
        {
            "id": "up-3",
            "occurred_at": (gate.now - timedelta(minutes=1)).isoformat(),
            "kind": "vehicle",
            "plate": PLATE,
            "passengers": [{"document_number": ZHANG}, {"document_number": WANG}],
        },
        {"id": "up-4", "occurred_at": gate.now.isoformat(), "document_number": "12345"},
        {
            "id": "up-5",
            "occurred_at": gate.now.isoformat(),
            "document_number": LI,
            "checkpoint_id": "nowhere",
        },
        {
            "id": "up-6",
            "occurred_at": (gate.opened_at - timedelta(days=1)).isoformat(),
            "document_number": LI,
        },
        {"id": "up-7", "occurred_at": gate.now.isoformat(), "direction": "sideways"},
    ]
    body = {
        "items": [
            {"checkpoint_id": "comm-gate", "direction": "in", "health_code": "green", **i}
            for i in items
        ]
    }
    first = await gate.checkpoint.post("/v1/crossings:batch", json=body, headers=gate.admin())
    assert first.status_code == 200, first.text
    results = first.json()["results"]
    assert [(r["status"], r["decision"]) for r in results[:3]] == [
        ("created", "admit"),
        ("created", "deny"),
        ("created", "deny"),
    ]
    assert results[0]["views_as_of"] is not None and results[1]["views_as_of"] is None
    assert results[2]["reasons"] == ["not_resident"]  # WANG is no resident; the car is
    assert [(r["status"], r["field"]) for r in results[3:]] == [
        ("error", "document_number"),
        ("error", "checkpoint_id"),
        ("error", "occurred_at"),
        ("error", "direction"),
    ]
    events = "SELECT count(*) FROM events WHERE stream_type = 'crossing'"
    count = await gate.pools["checkpoint"].fetchval(events)
    assert count == 3

    second = await gate.checkpoint.post("/v1/crossings:batch", json=body, headers=gate.admin())
    assert [r["status"] for r in second.json()["results"][:3]] == ["unchanged"] * 3
    assert [r["decision"] for r in second.json()["results"]] == [r["decision"] for r in results]
    assert await gate.pools["checkpoint"].fetchval(events) == count
    late = await gate.checkpoint.get("/v1/crossings/up-1", headers=gate.admin())
    assert late.json()["views_as_of"] is not None

    # a gatekeeper's upload counts only for the time of their shift
    mine = await gate.checkpoint.post(
        "/v1/crossings:batch",
        headers=gate.keeper(),
        json={
            "items": [
                {
                    "id": "gk-old",
                    "checkpoint_id": "comm-gate",
                    "direction": "in",
                    "health_code": "green",
                    "document_number": ZHANG,
                    "occurred_at": (gate.now - timedelta(hours=3)).isoformat(),
                },
                {
                    "id": "gk-now",
                    "checkpoint_id": "comm-gate",
                    "direction": "in",
                    "health_code": "green",
                    "document_number": ZHANG,
                    "occurred_at": gate.now.isoformat(),
                },
            ]
        },
    )
    assert [(r["status"], r["refusal"]) for r in mine.json()["results"]] == [
        ("error", "forbidden"),
        ("created", None),
    ]


async def test_a_days_duty_roster_shows_its_gaps_and_missing_roles(gate: Gate) -> None:
    day = gate.now.astimezone(gate.stack.settings.zone).date()
    start = datetime.combine(day, datetime.min.time(), gate.stack.settings.zone)
    admin = gate.admin()
    for sid, sub, role, frm, to in [
        ("d-police", "police-li", "police", 0, 24),
        ("d-cadre-am", "cadre-wang", "community_cadre", 0, 12),
        ("d-health", "doc-zhao", "health_worker", 8, 20),
    ]:
        r = await gate.checkpoint.post(
            "/v1/checkpoints/comm-gate/shifts",
            headers=admin,
            json={
                "id": sid,
                "sub": sub,
                "role": role,
                "starts_at": (start + timedelta(hours=frm)).isoformat(),
                "ends_at": (start + timedelta(hours=to)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
    clash = await gate.checkpoint.post(
        "/v1/checkpoints/comm-gate/shifts",
        headers=admin,
        json={
            "id": "d-clash",
            "sub": "police-li",
            "role": "police",
            "starts_at": (start + timedelta(hours=6)).isoformat(),
            "ends_at": (start + timedelta(hours=7)).isoformat(),
        },
    )
    assert clash.status_code == 409
    r = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/coverage",
        headers=gate.keeper(),
        params={"date": day.isoformat()},
    )
    assert r.status_code == 200, r.text
    cover = r.json()
    assert cover["gaps"] == [] and not cover["complete"]
    assert cover["missing_roles"] == []  # gk-1's property_guard shift spans now
    assert [
        (datetime.fromisoformat(g["start"]), datetime.fromisoformat(g["end"]))
        for g in cover["role_gaps"]["community_cadre"]
    ] == [(start + timedelta(hours=12), start + timedelta(days=1))]
    assert len(cover["role_gaps"]["health_worker"]) == 2

    # without the guard's shift the role is missing, and the guard may no longer record
    cancelled = await gate.checkpoint.post(
        "/v1/checkpoints/comm-gate/shifts/gk-1-now/cancel", headers=admin, json={"reason": "病假"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"]
    r = await gate.checkpoint.get(
        "/v1/checkpoints/comm-gate/coverage", headers=admin, params={"date": day.isoformat()}
    )
    assert r.json()["missing_roles"] == ["property_guard"]
    assert (await gate.cross()).status_code == 403


# -- who may call what -----------------------------------------------------------------------

ADMINS = frozenset({Role.ADMIN})
RECORDERS = frozenset({Role.ADMIN, Role.GATEKEEPER})
GATE_READERS = frozenset({Role.ADMIN, Role.GATEKEEPER, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR})
LEDGER_READERS = frozenset({Role.ADMIN, Role.COMMAND, Role.AUDITOR, Role.INTEGRATOR})


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    url: str
    roles: frozenset[Role]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)


def _crossing(cid: str) -> dict[str, Any]:
    return {
        "id": cid,
        "checkpoint_id": "comm-gate",
        "direction": "in",
        "health_code": "green",
        "document_number": ZHANG,
    }


ACCESS = [
    Call(
        "POST",
        "/v1/checkpoints",
        "/v1/checkpoints",
        ADMINS,
        {"id": "spare-gate", "node_id": "g2", "name": "二网格卡口", "level": "compound"},
    ),
    Call("GET", "/v1/checkpoints/{checkpoint_id}", "/v1/checkpoints/comm-gate", GATE_READERS),
    Call(
        "POST",
        "/v1/checkpoints/{checkpoint_id}/policy",
        "/v1/checkpoints/spare-gate/policy",
        ADMINS,
        {"policy": CLOSED_POLICY, "effective_from": "2030-01-01T00:00:00+08:00"},
    ),
    Call(
        "POST",
        "/v1/checkpoints/{checkpoint_id}/shifts",
        "/v1/checkpoints/spare-gate/shifts",
        ADMINS,
        {
            "id": "spare-1",
            "sub": "vol-1",
            "role": "volunteer",
            "starts_at": "2030-01-01T08:00:00+08:00",
            "ends_at": "2030-01-01T20:00:00+08:00",
        },
    ),
    Call(
        "POST",
        "/v1/checkpoints/{checkpoint_id}/shifts/{shift_id}/cancel",
        "/v1/checkpoints/spare-gate/shifts/spare-1/cancel",
        ADMINS,
        {"reason": "调休"},
    ),
    Call(
        "GET",
        "/v1/checkpoints/{checkpoint_id}/coverage",
        "/v1/checkpoints/comm-gate/coverage",
        GATE_READERS,
    ),
    Call(
        "POST",
        "/v1/checkpoints/{checkpoint_id}/close",
        "/v1/checkpoints/spare-gate/close",
        ADMINS,
        {"reason": "撤卡"},
    ),
    Call("POST", "/v1/crossings", "/v1/crossings", RECORDERS, _crossing("role-1")),
    Call(
        "POST",
        "/v1/crossings:batch",
        "/v1/crossings:batch",
        RECORDERS,
        {"items": [_crossing("role-2")]},
    ),
    Call("GET", "/v1/crossings/{crossing_id}", "/v1/crossings/role-1", LEDGER_READERS),
    Call(
        "GET",
        "/v1/checkpoints/{checkpoint_id}/crossings",
        "/v1/checkpoints/comm-gate/crossings",
        LEDGER_READERS,
    ),
    Call(
        "GET",
        "/v1/checkpoints/{checkpoint_id}/crossings.csv",
        "/v1/checkpoints/comm-gate/crossings.csv",
        LEDGER_READERS,
    ),
]
OPS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    # the operator routes every service has (shared/ops.py; roles: tests/e2e/test_ops.py)
    "/v1/lag",
    "/v1/admin/dead-letters",
    "/v1/admin/dead-letters/{dead_letter_id}",
    "/v1/admin/dead-letters/{dead_letter_id}/retry",
}


def test_every_checkpoint_route_is_in_the_access_table() -> None:
    # from the OpenAPI document: this FastAPI keeps included routers unflattened in app.routes
    paths = checkpoint_app().openapi()["paths"]
    routes = {(m.upper(), path) for path, ops in paths.items() if path not in OPS for m in ops}
    assert len(routes) == len(ACCESS)
    assert routes == {(c.method, c.route) for c in ACCESS}


async def test_role_table(gate: Gate) -> None:
    """Each role x each endpoint: allowed (2xx) or 403, in the order of the table."""
    for call in ACCESS:
        for role in Role:
            # a gatekeeper's token is the one holding the current shift
            headers = gate.stack.token(role.value, sub="gk-1" if role is Role.GATEKEEPER else None)
            r = await gate.checkpoint.request(
                call.method, call.url, json=call.body, params=call.params, headers=headers
            )
            expected = "allowed" if role in call.roles else "denied"
            got = (
                "allowed"
                if r.status_code in (200, 201)
                else ("denied" if r.status_code == 403 else f"status {r.status_code}: {r.text}")
            )
            assert got == expected, (call.method, call.url, role.value)
