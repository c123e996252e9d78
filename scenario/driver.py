"""Sends a world to the services through their public HTTP APIs and records what they
answered. Only ids fixed by the world are sent, so a second run changes nothing. Where one
service must have seen what another recorded (before the crossings, and at the end), it waits
for every service's `GET /v1/lag` to settle (scenario/caught_up.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from scenario.caught_up import settled
from scenario.http import Caller, Services, Tokens
from scenario.load_gates import load_crossings, load_gates
from scenario.load_registry import load_registry
from scenario.load_screening import load_screening
from scenario.load_today import load_today
from scenario.observe import observe_follow_ups, observe_key_persons
from scenario.observed import Observed
from scenario.world import World

log = logging.getLogger("scenario")


async def drive(
    world: World,
    services: Services,
    *,
    tokens: Tokens | None = None,
    observe: bool = False,
    patience: float = 60.0,
) -> Observed:
    call = Caller(tokens or Tokens(), patience)
    seen = Observed()

    async def settle() -> None:
        await settled(services.by_name(), headers=call.tokens("auditor"), timeout=patience)

    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("registry", lambda: load_registry(world, services, call, seen)),
        ("screening", lambda: load_screening(world, services, call, seen)),
        ("gates", lambda: load_gates(world, services, call, seen)),
        # the gates decide from their views of people, vehicles, watches and risk areas:
        # the crossings go once every service has applied everything loaded so far
        ("views", settle),
        ("crossings", lambda: load_crossings(world, services, call, seen)),
        ("today", lambda: load_today(world, services, call, seen)),
    ]
    if observe:
        steps += [
            ("key persons", lambda: observe_key_persons(world, services, call, seen, patience)),
            ("follow-ups", lambda: observe_follow_ups(world, services, call, seen, patience)),
        ]
    # what the gates and the scheduler did has reached every read model (reporting's too)
    steps.append(("settled", settle))
    for name, step in steps:
        started = time.monotonic()
        await step()
        log.info("%s: %.1fs, %d requests so far", name, time.monotonic() - started, call.requests)
    seen.requests = call.requests
    seen.created = call.statuses.get("created", 0)
    seen.unchanged = call.statuses.get("unchanged", 0)
    return seen
