"""Every record on every topic says where it came from: the request that started the work
(`correlation_id`), what directly caused it (`causation_id`) and, for an aggregate with a
place, the place (`node_id`) — through reactions, referrals and the scheduler's misses."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.screening.handlers.scheduler import scan
from shared.envelope import Envelope, utc_now
from shared.eventstore import command_causation
from shared.testing import eventually
from tests.e2e.test_checkpoint import LI, Gate, _seen, gate  # noqa: F401  (the fixture)
from tests.e2e.test_screening_watch import local, today
from tests.integration.helpers import read_topic

# stream types whose aggregate has a place (every other one: rules, risk areas, templates)
PLACED = {"node", "person", "vehicle", "watch", "placecare", "key_person", "checkpoint", "crossing"}


async def _records(g: Gate, service: str) -> list[Envelope]:
    pool = g.stack.apps[service].state.pool
    stored = await pool.fetchval("SELECT count(*) FROM events")
    topic = g.stack.apps[service].state.settings.topic(f"{service}.events")
    records = await read_topic(g.stack.kafka_bootstrap, topic, expected=stored)
    assert len({(e.stream_id, e.version) for e in records}) == stored
    return records


async def test_every_record_carries_its_correlation_cause_and_place(
    gate: Gate,  # noqa: F811
) -> None:
    s, admin, medic = gate.stack, gate.admin(), gate.stack.token("medic")
    flow = uuid.uuid4()
    traced = {"X-Correlation-ID": str(flow)}
    # a later person event (its place is the household), with and without an Idempotency-Key
    contact = await s.registry.post(
        "/v1/persons/p1/contact",
        headers={**admin, "Idempotency-Key": "contact-1"},
        json={"name": "张三丰", "phone": "13900001111"},
    )
    assert contact.status_code == 200, contact.text
    tags = await s.registry.post("/v1/persons/p1/tags", headers=admin, json={"add": ["低保"]})
    assert tags.status_code == 200, tags.text
    # a watch opened two days ago: the scheduler finds its missed follow-ups and calls
    started = utc_now() - timedelta(days=2)
    observed = await s.screening.post(
        "/v1/observations",
        headers={**medic, **traced},
        json={"subject_id": "p1", "starts_at": started.isoformat()},
    )
    assert observed.status_code == 201, observed.text
    # a fever reading flags a key person (a reaction)
    fever = await s.screening.post(
        "/v1/temperatures",
        headers={**medic, **traced},
        json={
            "id": "fever-1",
            "subject_id": "p1",
            "celsius": 38.6,
            "occurred_at": local(today() - timedelta(days=1), 9),
        },
    )
    assert fever.status_code == 201, fever.text
    # a stranger from a risk area is referred at the gate and flagged in screening
    area = await s.screening.post(
        "/v1/risk-areas",
        headers=admin,
        json={
            "id": "wuhan",
            "name": "湖北省武汉市",
            "region_codes": ["4201"],
            "valid_from": (gate.now - timedelta(days=30)).date().isoformat(),
        },
    )
    assert area.status_code == 201, area.text
    await _seen(gate.pools["checkpoint"], "SELECT true FROM risk_areas WHERE id = 'wuhan'")
    crossing = await gate.checkpoint.post(
        "/v1/crossings",
        headers={**gate.keeper(), **traced},
        json={
            "checkpoint_id": "comm-gate",
            "direction": "in",
            "health_code": "green",
            "temperature": 36.5,
            "document_number": LI,
            "origin": "湖北省武汉市",
        },
    )
    assert crossing.json()["decision"] == "refer", crossing.text

    screening = s.apps["screening"]
    assert await scan(screening.state.pool, screening.state.settings, utc_now()) > 0

    async def flagged() -> bool:
        n = await gate.pools["screening"].fetchval(
            "SELECT count(*) FROM events WHERE type = 'KeyPersonFlagged'"
        )
        return bool(n >= 2)

    await eventually(flagged, message="the reaction and the referral never flagged anyone")

    records = {n: await _records(gate, n) for n in ("registry", "screening", "checkpoint")}
    every = [e for found in records.values() for e in found]
    assert [e for e in every if e.correlation_id is None or e.causation_id is None] == []
    unplaced = [(e.type, e.stream_id) for e in every if e.stream_type in PLACED and not e.node_id]
    assert unplaced == []

    by_id = {e.event_id: e for e in every}
    # a keyed command's events are caused by the command; an unkeyed request is its own cause
    (changed,) = [e for e in records["registry"] if e.type == "PersonContactChanged"]
    command_id = f"{changed.actor} POST /v1/persons/{{person_id}}/contact contact-1"
    assert changed.causation_id == command_causation(command_id), changed
    assert changed.node_id == "h1"
    # a reaction carries its trigger's correlation and is caused by it
    reading = next(e for e in records["screening"] if e.type == "TemperatureRecorded")
    assert reading.correlation_id == flow
    flags = [e for e in records["screening"] if e.type == "KeyPersonFlagged"]
    assert {(by_id[f.causation_id].type, f.correlation_id) for f in flags} == {
        ("TemperatureRecorded", flow),
        ("CrossingRecorded", flow),
    }
    # a miss is caused by the event that opened its watch, and shares its origin
    (opened,) = [e for e in records["screening"] if e.type == "ObservationStarted"]
    misses = [e for e in records["screening"] if e.type in ("FollowUpMissed", "CareTaskMissed")]
    assert {e.type for e in misses} == {"FollowUpMissed", "CareTaskMissed"}
    assert {(e.causation_id, e.correlation_id) for e in misses} == {(opened.event_id, flow)}
