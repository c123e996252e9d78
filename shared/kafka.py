"""Kafka plumbing: topic creation by the project, producer settings for the relay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

# The topics are the replayable history: nothing is ever deleted by age or size.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


async def ensure_topics(
    bootstrap: str,
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
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=10000, client_id=client_id
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                response = await admin.create_topics(
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
            await admin.close()


def relay_producer(
    bootstrap: str, *, transactional_id: str | None = None, client_id: str | None = None
) -> AIOKafkaProducer:
    """An idempotent producer: acks from all replicas, no duplicates or reordering on retry.
    With a `transactional_id` (the relay's), a newer producer of that id fences this one."""
    options: dict[str, object] = {}
    if transactional_id is not None:
        options["transactional_id"] = transactional_id
        options["transaction_timeout_ms"] = 60000
    if client_id is not None:
        options["client_id"] = client_id
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=30000,
        **options,
    )
