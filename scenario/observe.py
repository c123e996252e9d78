"""Reading back what the services decided on their own: key persons (flagged by inquiries,
by positive results and by referrals from the gates, which reach screening through Kafka)
and each watched person's follow-ups, once the missed-slot scheduler has settled every
window of the simulated days."""

from __future__ import annotations

from collections import Counter
from typing import Any

from scenario.http import Caller, Services, gather, poll
from scenario.observed import Observed
from scenario.plan import WatchPlan
from scenario.world import World


def referred(world: World, seen: Observed) -> int:
    return sum(
        1
        for c in world.plan.crossings
        if c.body["kind"] == "person" and seen.crossings[c.id]["decision"] == "refer"
    )


async def key_persons(world: World, services: Services, call: Caller) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        params: dict[str, Any] = {"node_id": world.district.root.id, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (
            await call.send(services.screening, "GET", "/v1/key-persons", "admin", params=params)
        ).json()
        found += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def observe_key_persons(
    world: World, services: Services, call: Caller, seen: Observed, timeout: float
) -> None:
    referrals = referred(world, seen)
    positives = sum(1 for s in world.plan.samples if s.result == "positive")

    async def settled() -> list[dict[str, Any]] | None:
        listed = await key_persons(world, services, call)
        reasons = Counter(r for k in listed for r in k["reasons"])
        if reasons["checkpoint_referral"] >= referrals and reasons["positive_test"] >= positives:
            return listed
        return None

    listed = await poll(settled, "screening's key persons from referrals and results", timeout)
    details = await gather(
        call.send(services.screening, "GET", f"/v1/key-persons/{k['subject_id']}", "admin")
        for k in listed
    )
    seen.key_persons = [d.json() for d in details]


def due_slots(world: World, w: WatchPlan) -> set[tuple[str, str]]:
    """The follow-up windows of the simulated days wholly inside the watch."""
    return {
        (str(day), label)
        for day in world.calendar.dates
        for label, opens, _ in world.calendar.slot_times(day)
        if opens >= w.starts_at
    }


def due_care(world: World, w: WatchPlan) -> set[tuple[str, str, str]]:
    """The care windows (task, day, window) of the simulated days wholly inside the watch."""
    return {
        (task, str(day), label)
        for day in world.calendar.dates
        for task, label, opens, _ in world.calendar.care_windows(w.kind, day)
        if opens >= w.starts_at
    }


async def observe_follow_ups(
    world: World, services: Services, call: Caller, seen: Observed, timeout: float
) -> None:
    """Each watched person's readings and misses, and care done and missed, once every
    window of the simulated days is one or the other."""

    async def one(w: WatchPlan) -> None:
        subject, due, care_due = (
            seen.person_id(w.person.ref),
            due_slots(world, w),
            due_care(world, w),
        )

        async def follow_ups() -> dict[str, Any] | None:
            answer = (
                await call.send(
                    services.screening,
                    "GET",
                    f"/v1/watch/{subject}/follow-ups",
                    "admin",
                    params={"limit": 1000},
                )
            ).json()
            got = {(r["slot_day"], r["slot"]) for r in answer["readings"]}
            got |= {(m["slot_day"], m["slot"]) for m in answer["missed"]}
            return answer if due <= got else None

        async def care() -> dict[str, Any] | None:
            answer = (
                await call.send(services.screening, "GET", f"/v1/care/{subject}", "admin")
            ).json()
            got = {(c["task"], c["slot_day"], c["slot"]) for c in answer["done"] + answer["missed"]}
            return answer if care_due <= got else None

        seen.follow_ups[subject] = await poll(follow_ups, f"follow-ups of {subject}", timeout)
        seen.care[subject] = await poll(care, f"care of {subject}", timeout)

    await gather(one(w) for w in world.plan.watches)
