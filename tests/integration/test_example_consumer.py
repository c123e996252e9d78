"""examples/consumer.py, run as an integrator would, against records the relay published."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.eventstore import append
from shared.kafka import ensure_topics
from shared.relay import OutboxRelay
from shared.testing import Infra, delete_topics, unique
from tests.integration.helpers import publish_all
from tests.integration.test_cloudevents import NODE, PERSON_V1, _event

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumer.py"


@pytest.fixture
async def registry_topic(infra: Infra) -> Any:
    prefix = unique("example") + "."
    name = prefix + "registry.events"
    await ensure_topics(infra.kafka_bootstrap, [name], partitions=3)
    yield name
    await delete_topics(infra.kafka_bootstrap, prefix)


async def _run(infra: Infra, topic: str, group: str, db: Path) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        topic,
        "--bootstrap",
        infra.kafka_bootstrap,
        "--group",
        group,
        "--db",
        str(db),
        "--idle-seconds",
        "3",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_the_example_applies_each_event_once_upcast_and_resumes(
    infra: Infra, pool: Any, registry_topic: str, producer: Any, tmp_path: Path
) -> None:
    renamed = {"node_id": "n1", "name": "金堂", "previous_name": "金堂县"}
    async with pool.acquire() as conn, conn.transaction():
        await append(
            conn,
            [
                _event("node:n1", "NodeCreated", 1, NODE),
                replace(_event("node:n1", "NodeRenamed", 1, renamed), version=2),
                _event("person:p1", "PersonRegistered", 1, PERSON_V1),
            ],
        )
    assert await publish_all(OutboxRelay(pool, producer, registry_topic), 3) == 3
    # published again (a relay that lost its checkpoint): the consumer must not apply twice
    again = OutboxRelay(pool, producer, registry_topic, name=unique("relay"))
    assert await publish_all(again, 3) == 3

    group, db = unique("integrator"), tmp_path / "seen.sqlite3"
    applied = await _run(infra, registry_topic, group, db)
    assert sorted((e["stream_id"], e["version"]) for e in applied) == [
        ("node:n1", 1),
        ("node:n1", 2),
        ("person:p1", 1),
    ]
    nodes = [e["version"] for e in applied if e["stream_id"] == "node:n1"]
    assert nodes == [1, 2]  # in stream order
    assert {e["ce_type"] for e in applied} >= {"grid-epi.registry.PersonRegistered.v1"}

    stored = (
        sqlite3.connect(db)
        .execute("SELECT schema_version, data FROM events WHERE stream_id = 'person:p1'")
        .fetchone()
    )
    assert stored[0] == 2 and "birth_year" not in json.loads(stored[1])  # upcast to v2

    assert await _run(infra, registry_topic, group, db) == []  # resumes after its offsets
