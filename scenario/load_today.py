"""What happens on the load day itself (the APIs take these as "now"): quarantines extended
and released (解除隔离), observations ended, test results back from the lab."""

from __future__ import annotations

from datetime import date, datetime

import httpx

from scenario.http import Caller, Services, gather
from scenario.observed import Observed
from scenario.plan import WatchPlan
from scenario.world import World

DONE = (200, 201, 409)  # 409: already extended / released by an earlier run


def day_of(answer: httpx.Response, field: str, world: World) -> date:
    value = answer.json().get(field) if answer.status_code < 300 else None
    moment = datetime.fromisoformat(value) if value else datetime.now(world.calendar.zone)
    return moment.astimezone(world.calendar.zone).date()


async def load_today(world: World, services: Services, call: Caller, seen: Observed) -> None:
    async def end(w: WatchPlan) -> None:
        if w.extend_to is not None:
            await call.send(
                services.screening,
                "POST",
                f"/v1/quarantines/{w.id}/extend",
                "medic",
                {"planned_end": str(w.extend_to), "reason": "复查未满14天"},
                key=f"extend-{w.id}",
                accept=DONE,
            )
            seen.extended_on[w.id] = datetime.now(world.calendar.zone).date()
        if w.release:
            subject = seen.person_id(w.person.ref)
            url = (
                f"/v1/observations/{subject}/release"
                if w.kind == "observation"
                else f"/v1/quarantines/{w.id}/release"
            )
            answer = await call.send(
                services.screening,
                "POST",
                url,
                "medic",
                {"reason": "期满解除"},
                key=f"release-{w.id}",
                accept=DONE,
            )
            seen.released_on[w.id] = day_of(answer, "ended_at", world)

    await gather(end(w) for w in world.plan.watches)

    async def result(sample_id: str, outcome: str) -> None:
        answer = await call.send(
            services.screening,
            "POST",
            f"/v1/samples/{sample_id}/result",
            "medic",
            {"result": outcome},
            key=f"result-{sample_id}",
            accept=DONE,
        )
        seen.resulted_on[sample_id] = day_of(answer, "resulted_at", world)

    await gather(result(s.id, s.result) for s in world.plan.samples if s.result)
