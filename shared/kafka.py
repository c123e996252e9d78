"""Kafka plumbing: every client the services make is built here, so each one connects and
authenticates the same way; topic creation by the project; producer settings for the relay.

A cluster is a `KafkaCluster` (address, security protocol, SASL credentials, CA bundle), or
just its bootstrap address for a loopback PLAINTEXT broker (tests, benchmarks). Loopback
PLAINTEXT is the local default; elsewhere SASL/SCRAM, over TLS where the brokers offer it
(docs/security.md, "Kafka authentication").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


@dataclass(frozen=True)
class KafkaCluster:
    """Where the brokers are and how a client proves who it is."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        """The connection keywords of an aiokafka producer, consumer or admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.security_protocol.endswith("SSL"):
            # verifies the brokers' certificates and host names against the CA bundle (or the
            # system's trust store without one)
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options


Cluster = KafkaCluster | str  # a bare bootstrap address: a loopback PLAINTEXT broker


def cluster_of(cluster: Cluster) -> KafkaCluster:
    return KafkaCluster(cluster) if isinstance(cluster, str) else cluster


def kafka_producer(cluster: Cluster, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**cluster_of(cluster).client_options(), **options)


def kafka_consumer(cluster: Cluster, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **cluster_of(cluster).client_options(), **options)


def kafka_admin(cluster: Cluster, **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**cluster_of(cluster).client_options(), **options)


log = logging.getLogger(__name__)

# The topics are the replayable history: nothing is ever deleted by age or size.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


async def ensure_topics(
    bootstrap: Cluster,
    topics: Iterable[str],
    partitions: int,
    *,
    timeout: float = 30.0,
    client_id: str = "grid-admin",
) -> None:
    """Create the topics that do not exist yet (broker auto-creation is off)."""
    wanted = sorted(set(topics))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        client = kafka_admin(bootstrap, request_timeout_ms=10000, client_id=client_id)
        try:
            await client.start()
            existing = set(await client.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                response = await client.create_topics(
                    [NewTopic(t, partitions, 1, topic_configs=TOPIC_CONFIG) for t in missing]
                )
                for topic, code, *message in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise RuntimeError(f"cannot create topic {topic}: {code} {message}")
                log.info("created topics %s", missing)
            return
        except KafkaConnectionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await client.close()


def relay_producer(
    bootstrap: Cluster, *, transactional_id: str | None = None, client_id: str | None = None
) -> AIOKafkaProducer:
    """An idempotent producer: acks from all replicas, no duplicates or reordering on retry.
    With a `transactional_id` (the relay's), a newer producer of that id fences this one."""
    options: dict[str, object] = {}
    if transactional_id is not None:
        options["transactional_id"] = transactional_id
        options["transaction_timeout_ms"] = 60000
    if client_id is not None:
        options["client_id"] = client_id
    return kafka_producer(
        bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=30000,
        **options,
    )
