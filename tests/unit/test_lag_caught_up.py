"""`GET /v1/lag` says whether a service has caught up: given what was measured (relay backlog,
each consumer's lag and open dead letters), then `caught_up` — the one field a client waits
on before it relies on another service having seen what it wrote."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.lag import ConsumerLag, LagReport, LagStatus, PartitionLag, RelayBacklog


def consumer(
    lag: int | None = 0, *, dead_letters: int = 0, status: LagStatus = LagStatus.OK
) -> ConsumerLag:
    known = status is LagStatus.OK
    return ConsumerLag(
        consumer="e2e_checkpoint.registry-views",
        topics=["registry.events"],
        status=status,
        lag=lag,
        dead_letters=dead_letters,
        held_streams=1 if dead_letters else 0,
        partitions=[
            PartitionLag(
                topic="registry.events",
                partition=0,
                committed=6,
                high_watermark=7 if known else None,
                lag=lag,
                dead_letters=dead_letters,
            )
        ],
    )


def relay(backlog: int) -> RelayBacklog:
    return RelayBacklog(relay="checkpoint.relay", topic="checkpoint.events", backlog=backlog,
                        published=12)  # fmt: skip


def report(relay: RelayBacklog | None, *consumers: ConsumerLag) -> LagReport:
    return LagReport(
        service="checkpoint",
        measured_at=datetime(2020, 2, 1, tzinfo=UTC),
        status=LagStatus.OK,
        relay=relay,
        lag=sum(c.lag or 0 for c in consumers),
        dead_letters=sum(c.dead_letters for c in consumers),
        held_streams=sum(c.held_streams for c in consumers),
        consumers=list(consumers),
    )


@pytest.mark.parametrize(
    ("given", "caught_up"),
    [
        (consumer(0), True),  # every record applied (a commit marker is no record)
        (consumer(3), False),  # records on the topic not applied yet
        (consumer(None, status=LagStatus.UNKNOWN), False),  # Kafka not asked: never "caught up"
        (consumer(0, dead_letters=1), False),  # a parked record is not applied
    ],
)
def test_a_consumer_is_caught_up_when_every_record_is_applied(
    given: ConsumerLag, caught_up: bool
) -> None:
    assert given.caught_up is caught_up


@pytest.mark.parametrize(
    ("given", "caught_up"),
    [
        (report(relay(0), consumer(0), consumer(0)), True),
        (report(None, consumer(0)), True),  # publishes nothing (reporting)
        (report(relay(0)), True),  # consumes nothing (registry)
        (report(relay(2), consumer(0)), False),  # recorded, not on Kafka yet
        (report(relay(0), consumer(0), consumer(1)), False),  # one consumer behind
    ],
)
def test_a_service_is_caught_up_when_it_published_and_applied_everything(
    given: LagReport, caught_up: bool
) -> None:
    assert given.caught_up is caught_up


def test_the_answer_carries_caught_up_for_the_service_and_each_consumer() -> None:
    answer = report(relay(0), consumer(0), consumer(4)).model_dump(mode="json")
    assert answer["caught_up"] is False
    assert [c["caught_up"] for c in answer["consumers"]] == [True, False]
