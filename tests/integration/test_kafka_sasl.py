"""Kafka with SASL/SCRAM: a private broker started by `deploy/local/infra.sh` with
`GRID_KAFKA_SASL=1` on free ports refuses clients without the right credentials, and the
services' clients, configured from `infra.sh env`, create topics, publish in transactions and
read back. The shared broker of the other tests is never touched."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError

from shared.kafka import KafkaCluster, ensure_topics, kafka_admin, kafka_consumer, relay_producer
from shared.lag import Watermarks, partitions_of
from shared.settings import ServiceSettings
from shared.testing import ROOT, eventually, unique

INFRA_SH = ROOT / "deploy" / "local" / "infra.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def infra(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["bash", str(INFRA_SH), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"infra.sh {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def sasl_env() -> Iterator[dict[str, str]]:
    """The exports `infra.sh env` prints for a private SASL broker."""
    state = Path("/var/tmp") / unique("grid-epi-sasl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    env.update(
        GRID_STATE_DIR=str(state),
        GRID_KAFKA_PORT=str(free_port()),
        GRID_KAFKA_CONTROLLER_PORT=str(free_port()),
        GRID_KAFKA_SASL="1",
        GRID_KAFKA_SASL_PASSWORD=secrets.token_urlsafe(18),
    )
    try:
        infra(env, "up", "kafka")
        exports = infra(env, "env")
        yield dict(
            line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if line
        )
    finally:
        infra(env, "reset")


@pytest.fixture
def settings(sasl_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    for name, value in sasl_env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings()


def test_the_broker_offers_sasl_scram_to_the_services(settings: ServiceSettings) -> None:
    cluster = settings.kafka
    assert cluster.security_protocol == "SASL_PLAINTEXT"
    assert cluster.sasl_mechanism == "SCRAM-SHA-512"
    assert cluster.username == "grid" and len(cluster.password) >= 24


@pytest.mark.parametrize("credentials", ["none", "wrong password"])
async def test_a_client_without_the_right_credentials_is_refused(
    settings: ServiceSettings, credentials: str
) -> None:
    right = settings.kafka
    cluster: KafkaCluster | str = (
        right.bootstrap
        if credentials == "none"
        else KafkaCluster(
            right.bootstrap,
            "SASL_PLAINTEXT",
            right.sasl_mechanism,
            right.username,
            right.password + "x",
        )  # fmt: skip
    )
    admin = kafka_admin(cluster, request_timeout_ms=5000)
    try:
        with pytest.raises((KafkaConnectionError, KafkaError)):
            await admin.start()
    finally:
        await admin.close()


async def test_the_services_clients_create_publish_and_read_with_credentials(
    settings: ServiceSettings,
) -> None:
    cluster, topic = settings.kafka, unique("sasl") + ".events"
    await ensure_topics(cluster, [topic], partitions=2, timeout=30)
    producer = relay_producer(cluster, transactional_id=unique("grid-relay"))
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(10):
                await producer.send(topic, f"event {i}".encode(), key=str(i).encode())
    finally:
        await producer.stop()

    assert [tp.partition for tp in await partitions_of(cluster, [topic])] == [0, 1]
    watermarks = Watermarks(cluster)

    async def committed() -> bool:
        # read committed: the ends move once the commit markers are written, just after
        return sum((await watermarks.of([topic])).values()) >= 10

    try:
        await eventually(committed, timeout=30, message="the transaction's records are visible")
    finally:
        await watermarks.close()

    consumer = kafka_consumer(
        cluster, topic, group_id=unique("sasl"), auto_offset_reset="earliest",
        isolation_level="read_committed",
    )  # fmt: skip
    await consumer.start()
    try:
        seen: set[bytes] = set()
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 10 and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            seen |= {r.value for records in batch.values() for r in records if r.value}
    finally:
        await consumer.stop()
    assert seen == {f"event {i}".encode() for i in range(10)}
