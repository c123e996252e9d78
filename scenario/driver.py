"""Sends a world to the services through their public HTTP APIs and records what they
answered. Only ids fixed by the world are sent, so a second run changes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from scenario.http import Caller, Services, Tokens, poll
from scenario.load_gates import load_crossings, load_gates
from scenario.load_registry import load_registry
from scenario.load_screening import load_screening
from scenario.load_today import load_today
from scenario.observe import observe_follow_ups, observe_key_persons
from scenario.observed import Observed
from scenario.world import World

log = logging.getLogger("scenario")

Ready = Callable[[], Awaitable[bool]]


def reporting_caught_up(world: World, services: Services, call: Caller) -> Ready:
    """Gates decide from their views of people and watches; before the crossings, wait
    until reporting (fed by the same topics as checkpoint's views) shows everyone and
    everyone under watch."""
    persons = len(world.district.persons)
    watched = sum(1 for w in world.plan.watches if not w.release)

    async def ready() -> bool:
        r = await call.send(
            services.reporting,
            "GET",
            f"/v1/nodes/{world.district.root.id}/summary",
            "command",
            accept=(200, 404),
        )
        if r.status_code == 404:
            return False
        stocks: dict[str, int] = r.json()["stocks"]
        under = stocks["under_observation"] + stocks["under_quarantine"]
        return stocks["persons"] >= persons and under >= watched

    return ready


async def drive(
    world: World,
    services: Services,
    *,
    tokens: Tokens | None = None,
    views_ready: Ready | None = None,
    observe: bool = False,
    patience: float = 60.0,
) -> Observed:
    call = Caller(tokens or Tokens(), patience)
    seen = Observed()
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("registry", lambda: load_registry(world, services, call, seen)),
        ("screening", lambda: load_screening(world, services, call, seen)),
        ("gates", lambda: load_gates(world, services, call, seen)),
        (
            "views",
            lambda: poll(
                views_ready or reporting_caught_up(world, services, call),
                "gates' views of people and watches",
                patience,
            ),
        ),
        ("crossings", lambda: load_crossings(world, services, call, seen)),
        ("today", lambda: load_today(world, services, call, seen)),
    ]
    if observe:
        steps += [
            ("key persons", lambda: observe_key_persons(world, services, call, seen, patience)),
            ("follow-ups", lambda: observe_follow_ups(world, services, call, seen, patience)),
        ]
    for name, step in steps:
        started = time.monotonic()
        await step()
        log.info("%s: %.1fs, %d requests so far", name, time.monotonic() - started, call.requests)
    seen.requests = call.requests
    seen.created = call.statuses.get("created", 0)
    seen.unchanged = call.statuses.get("unchanged", 0)
    return seen
