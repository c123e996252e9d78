"""The blind spots (死角) each chain must show on a day: the places left without a party on
purpose, and the key persons inside the chain's root that no medic answers for."""

from __future__ import annotations

from datetime import date, datetime

from scenario.observed import Observed
from scenario.world import World

PERSON_TIER = 6  # 医护人员包人 in baobao-6


def expected_blind_spots(world: World, seen: Observed, day: date) -> set[tuple[str, int, str]]:
    """(instance id, tier, target id) for every blind spot on `day`."""
    plan, district = world.plan, world.district
    spots = set(plan.blind_spots)
    lines = dict(district.lines)
    for h in district.households:
        lines[seen.household_id(h.ref)] = h.line
    covered = {
        seen.person_id(a.target.ref)
        for a in plan.assignments
        if a.level == PERSON_TIER and hasattr(a.target, "document_number")
    }
    for instance in plan.instances:
        if instance.template_id != "baobao-6":
            continue
        for k in seen.key_persons:
            line = lines.get(k["node_id"] or "")
            flags = [e for e in k["history"] if e["type"] == "KeyPersonFlagged"]
            if line is None or instance.root.id not in line or not flags:
                continue
            first = min(datetime.fromisoformat(e["occurred_at"]) for e in flags)
            if (
                first.astimezone(world.calendar.zone).date() <= day
                and k["subject_id"] not in covered
            ):
                spots.add((instance.id, PERSON_TIER, k["subject_id"]))
    return spots
