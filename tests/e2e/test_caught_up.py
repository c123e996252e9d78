"""A client knows when a service has applied what it wrote, from `GET /v1/lag` alone, on real
PostgreSQL and Kafka: `caught_up` holds only once every record on a consumer's topics is
applied, and a gate judges a quarantine ordered in screening as soon as screening and then
checkpoint say caught up — no polling of the gate's decisions, no reading its tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from scenario.caught_up import caught_up, lag
from shared.kafka import ensure_topics
from shared.runtime import consumer_name
from shared.testing import Infra
from tests.e2e import test_checkpoint
from tests.e2e.test_checkpoint import Gate
from tests.e2e.test_ops import running

gate = test_checkpoint.gate  # the seeded closed compound: resident p1 of h1 at comm-gate


async def test_a_consumer_is_caught_up_once_every_record_on_its_topics_is_applied(
    infra: Infra,
) -> None:
    quiet = {"run_consumers": False, "run_relay": False, "lag_refresh_seconds": 3600}
    async with running(infra, ["checkpoint"], checkpoint=quiet) as s:
        settings = s.apps["checkpoint"].state.settings
        views = consumer_name(settings, "registry-views")
        topic = settings.topic("registry.events")
        await ensure_topics(infra.kafka_bootstrap, [topic], settings.topic_partitions)
        pool = s.apps["checkpoint"].state.pool
        auditor = s.token("auditor")

        async def views_lag() -> tuple[bool, dict[str, Any]]:
            report = await lag(s.checkpoint, auditor)
            return report["caught_up"], next(
                c for c in report["consumers"] if c["consumer"] == views
            )

        # nothing published yet: nothing to apply
        assert (await views_lag())[0] is True
        producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap, transactional_id=f"{topic}-test"
        )
        await producer.start()
        try:
            async with producer.transaction():  # offsets 0-2, commit marker 3
                for _ in range(3):
                    await producer.send(topic, b"{}", partition=0)
        finally:
            await producer.stop()

        service, consumer = await views_lag()
        assert (service, consumer["caught_up"], consumer["lag"]) == (False, False, 3)
        await pool.execute(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)"
            " VALUES ($1, $2, 0, 2)",
            views,
            topic,
        )
        assert (await views_lag())[1]["caught_up"] is False  # one record left
        await pool.execute("UPDATE consumer_offsets SET next_offset = 3 WHERE consumer = $1", views)
        service, consumer = await views_lag()
        assert (service, consumer["caught_up"], consumer["lag"]) == (True, True, 0)

        # a record parked in dead letters is not applied
        await pool.execute(
            'INSERT INTO dead_letters (consumer, topic, partition, "offset", error, payload)'
            " VALUES ($1, $2, 0, 2, 'undecodable', 'x')",
            views,
            topic,
        )
        service, consumer = await views_lag()
        assert (service, consumer["caught_up"], consumer["lag"]) == (False, False, 0)


async def test_a_gate_judges_a_new_quarantine_once_screening_and_checkpoint_caught_up(
    gate: Gate,
) -> None:
    s = gate.stack
    auditor = s.token("auditor")
    # p1 registered in registry is known to screening once registry, then screening, say so
    await caught_up(s.registry, "registry", headers=auditor)
    await caught_up(s.screening, "screening", headers=auditor)
    ordered = await s.screening.post(
        "/v1/quarantines",
        headers=s.token("medic"),
        json={
            "id": "q-p1",
            "subject_id": "p1",
            "type": "home",
            "starts_at": (gate.now - timedelta(hours=2)).isoformat(),
            "planned_end": (gate.now + timedelta(days=14)).date().isoformat(),
        },
    )
    assert ordered.status_code == 201, ordered.text

    await caught_up(s.screening, "screening", headers=auditor)
    await caught_up(s.checkpoint, "checkpoint", headers=auditor)
    out = await gate.cross(direction="out")
    assert out.status_code == 201, out.text
    assert (out.json()["decision"], out.json()["reasons"]) == ("deny", ["under_quarantine"])
    assert out.json()["breaches"] == ["p1"]
