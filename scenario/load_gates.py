"""Checkpoint: the gates with their policies, 24-hour duty shifts, and the crossing ledger
uploaded in offline batches; the server decides each crossing and the scenario keeps the
decision it answered."""

from __future__ import annotations

from datetime import timedelta

from scenario.http import Caller, Services, gather
from scenario.observed import Observed
from scenario.world import World


async def load_gates(world: World, services: Services, call: Caller, seen: Observed) -> None:
    plan, cal = world.plan, world.calendar
    opened = cal.at(cal.anchor - timedelta(days=1), 0).isoformat()
    await gather(
        call.send(
            services.checkpoint,
            "POST",
            "/v1/checkpoints",
            "admin",
            {
                "id": g.id,
                "node_id": g.node.id,
                "name": g.name,
                "level": g.level,
                "policy": g.policy,
                "opened_at": opened,
            },
        )
        for g in plan.gates
    )
    await gather(
        call.send(
            services.checkpoint,
            "POST",
            f"/v1/checkpoints/{s.gate.id}/shifts",
            "admin",
            {
                "id": s.id,
                "sub": s.sub,
                "role": s.role,
                "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat(),
            },
        )
        for s in plan.shifts
    )


async def load_crossings(world: World, services: Services, call: Caller, seen: Observed) -> None:
    items = [c.body for c in sorted(world.plan.crossings, key=lambda c: c.at)]
    seen.crossings = await call.batch(services.checkpoint, "/v1/crossings:batch", "admin", items)
