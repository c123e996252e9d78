"""What the chains must show on a day: the blind spots (死角) — places left without a party
on purpose, key persons inside the chain's root that no medic answers for — and each
party's figures over what it covers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from scenario.district import Person, Place
from scenario.observed import Observed
from scenario.plan import Assignment
from scenario.truth import Truth
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
        if a.level == PERSON_TIER and isinstance(a.target, Person)
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


def flagged_by(seen: Observed, subject_id: str, day: date, world: World) -> bool:
    """On the key-person list at the end of `day`."""
    for k in seen.key_persons:
        if k["subject_id"] != subject_id:
            continue
        flags = [e for e in k["history"] if e["type"] == "KeyPersonFlagged"]
        first = min(datetime.fromisoformat(e["occurred_at"]) for e in flags)
        return first.astimezone(world.calendar.zone).date() <= day
    return False


def expected_party_summary(
    world: World, seen: Observed, truth: Truth, a: Assignment, day: date
) -> dict[str, Any]:
    """What a party with one assignment answers for on `day`: the figures of the place it
    covers, or — for a person (医护人员包人) — that person, counted apart."""
    if isinstance(a.target, Person):
        subject = seen.person_id(a.target.ref)
        figures = truth.figures("", day)  # no place: nothing but the core stocks at 0
        people = {"persons": 1, "key_persons": int(flagged_by(seen, subject, day, world))}
    else:
        node = a.target.id if isinstance(a.target, Place) else seen.household_id(a.target.ref)
        figures = truth.figures(node, day)
        people = {"persons": 0, "key_persons": 0}
    return {**figures, "people": people}
