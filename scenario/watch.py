"""Key persons under watch (居家观察 / 隔离): who is watched from when, the twice-daily
temperatures (some slots deliberately missed, a few fevers), mass testing (应检尽检) and
vaccination doses."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from scenario.calendar import Calendar
from scenario.district import District
from scenario.ids import Ids
from scenario.plan import CareTask, Dose, Plan, Reading, Sample, WatchPlan
from scenario.scale import Scale

QUARANTINE_TYPES = ("home", "home_medical", "centralized")
QUARANTINE_WEIGHTS = (60, 25, 15)
MISSED_SHARE = 0.12
RESULTS_AT_MOST = 2000  # results are posted one by one


def plan_watches(plan: Plan, cal: Calendar, ids: Ids, rng: random.Random) -> None:
    last_start = cal.dates[-2] if cal.days > 1 else cal.dates[0]
    for inq in plan.inquiries:
        day = inq.at.astimezone(cal.zone).date()
        if day > last_start or not (
            inq.travel and inq.travel[0].get("region_code", "")[:2] == "42" or inq.close_contact
        ):
            continue
        starts = cal.at(day, 19)  # the evening after the visit: first due slot the next morning
        if inq.close_contact:
            kind = "observation"
        else:
            kind = rng.choices(QUARANTINE_TYPES, QUARANTINE_WEIGHTS)[0]
        roll = rng.random()
        plan.watches.append(
            WatchPlan(
                ids.of("quarantine", inq.person.ref),
                inq.person,
                inq.household,
                kind,
                starts,
                day + timedelta(days=14),
                extend_to=day + timedelta(days=21)
                if kind != "observation" and roll < 0.3
                else None,
                release=roll > 0.75,
            )
        )
    ensure_every_ending(plan)
    for w in plan.watches:
        for day in cal.dates:
            for label, opens, _ in cal.slot_times(day):
                if opens < w.starts_at or rng.random() < MISSED_SHARE:
                    continue
                taken = opens + timedelta(minutes=rng.randrange(5, 110))
                celsius = round(
                    rng.uniform(37.4, 38.2) if rng.random() < 0.05 else rng.uniform(36.1, 37.1), 1
                )
                plan.readings.append(
                    Reading(
                        ids.of("reading", w.person.ref, day, label),
                        w.person,
                        w.household,
                        celsius,
                        taken,
                    )
                )


def ensure_every_ending(plan: Plan) -> None:
    """Whatever the dice said: one quarantine extended, one released, one observation
    released (解除), so every ending shows on the load day."""
    quarantines = [i for i, w in enumerate(plan.watches) if w.kind != "observation"]
    observations = [i for i, w in enumerate(plan.watches) if w.kind == "observation"]
    if quarantines:
        first = plan.watches[quarantines[0]]
        plan.watches[quarantines[0]] = replace(first, release=True)
    if len(quarantines) > 1:
        second = plan.watches[quarantines[1]]
        extend_to = second.planned_end + timedelta(days=7)
        plan.watches[quarantines[1]] = replace(second, extend_to=extend_to)
    if observations:
        first = plan.watches[observations[0]]
        plan.watches[observations[0]] = replace(first, release=True)


def plan_care(plan: Plan, cal: Calendar, ids: Ids, rng: random.Random) -> None:
    """The carer does most of the five dailies in their windows; some windows stay undone."""
    for w in plan.watches:
        for day in cal.dates:
            for task, label, opens, closes in cal.care_windows(w.kind, day):
                if opens < w.starts_at or rng.random() < MISSED_SHARE:
                    continue
                minutes = int((closes - opens).total_seconds() // 60)
                at = opens + timedelta(minutes=rng.randrange(1, minutes - 1))
                plan.care.append(
                    CareTask(
                        ids.of("care", w.person.ref, day, task, label),
                        w.person,
                        w.household,
                        task,
                        at,
                    )
                )


def plan_tests(
    plan: Plan, district: District, cal: Calendar, scale: Scale, ids: Ids, rng: random.Random
) -> None:
    day = cal.dates[-2] if cal.days > 1 else cal.dates[0]
    posted = 0
    for h in district.households:
        for person in h.persons:
            if rng.random() >= scale.tested_share:
                continue
            at = cal.at(day, 8) + timedelta(minutes=rng.randrange(10 * 60))
            result = None
            if posted < RESULTS_AT_MOST:
                roll = rng.random()
                result = "positive" if roll < 0.01 else "invalid" if roll < 0.03 else "negative"
                posted += 1
            plan.samples.append(Sample(ids.of("sample", person.ref), person, h, at, result))
    vulnerable = [(h, p) for h in district.households for p in h.persons if p.tags]
    for h, person in vulnerable[: max(3, len(vulnerable) // 2)]:
        for number in (1, 2):
            at = cal.at(cal.dates[0 if number == 1 else -1], 14) + timedelta(
                minutes=rng.randrange(120)
            )
            plan.doses.append(Dose(ids.of("dose", person.ref, number), person, h, number, at))
