"""The client's wait on `GET /v1/lag` (scenario/caught_up.py), against scripted answers: one
service until it says caught up; several until they are at a fixed point — all caught up and
nothing published or applied since the round before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scenario import caught_up as wait
from scenario.caught_up import caught_up, settled
from scenario.http import ScenarioError

AUDITOR = {"Authorization": "Bearer t"}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wait, "INTERVAL", 0)


def report(
    service: str, *, published: int | None = None, backlog: int = 0, committed: int = 5,
    lag: int = 0, dead_letters: int = 0,
) -> dict[str, Any]:  # fmt: skip
    consumer_caught_up = lag == 0 and dead_letters == 0
    relay = None if published is None else {"published": published, "backlog": backlog}
    return {
        "service": service,
        "relay": relay,
        "kafka_error": None,
        "caught_up": consumer_caught_up and backlog == 0,
        "consumers": [
            {
                "consumer": f"{service}.views",
                "lag": lag,
                "dead_letters": dead_letters,
                "caught_up": consumer_caught_up,
                "partitions": [
                    {"topic": "registry.events", "partition": 0, "committed": committed}
                ],  # fmt: skip
            }
        ],
    }


def scripted(answers: list[dict[str, Any]]) -> tuple[httpx.AsyncClient, list[int]]:
    """A client whose `GET /v1/lag` gives `answers` in turn (the last one from then on)."""
    asked = [0]

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/lag" and request.headers["authorization"] == "Bearer t"
        asked[0] += 1
        return httpx.Response(200, json=answers[min(asked[0], len(answers)) - 1])

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://test")
    return client, asked


async def test_one_service_is_waited_on_until_it_says_caught_up() -> None:
    client, asked = scripted([report("checkpoint", lag=3), report("checkpoint", lag=1),
                              report("checkpoint")])  # fmt: skip
    got = await caught_up(client, "checkpoint", headers=AUDITOR)
    assert got["caught_up"] and asked[0] == 3


async def test_a_service_that_never_catches_up_says_why() -> None:
    client, _ = scripted([report("checkpoint", published=9, backlog=2, dead_letters=1)])
    with pytest.raises(ScenarioError) as failed:
        await caught_up(client, "checkpoint", headers=AUDITOR, timeout=0.05)
    assert "2 events not on Kafka yet" in str(failed.value)
    assert "checkpoint.views lag 0, 1 open dead letters" in str(failed.value)


async def test_services_settle_when_nothing_moved_since_the_round_before() -> None:
    screening, _ = scripted([report("screening", published=4)])
    checkpoint, asked = scripted([report("checkpoint", published=7)])
    got = await settled({"screening": screening, "checkpoint": checkpoint}, headers=AUDITOR)
    assert set(got) == {"screening", "checkpoint"} and asked[0] == 2


async def test_a_reaction_published_between_two_caught_up_rounds_needs_another_round() -> None:
    """Each round says caught up, but the gate's relay published a referral in between (which
    screening then applied): only when nothing moves is everything applied everywhere."""
    screening, _ = scripted([report("screening", published=4, committed=2),
                             report("screening", published=4, committed=3)])  # fmt: skip
    checkpoint, asked = scripted([report("checkpoint", published=7),
                                  report("checkpoint", published=8)])  # fmt: skip
    await settled({"screening": screening, "checkpoint": checkpoint}, headers=AUDITOR)
    assert asked[0] == 3


async def test_services_that_do_not_settle_say_who_is_behind() -> None:
    registry, _ = scripted([report("registry", published=3)])
    reporting, _ = scripted([report("reporting", lag=12)])
    with pytest.raises(ScenarioError) as failed:
        await settled({"registry": registry, "reporting": reporting}, headers=AUDITOR, timeout=0.05)
    assert "reporting: reporting.views lag 12" in str(failed.value)
    assert "registry" not in str(failed.value).split(":", 1)[1]
