"""The whole scenario from a seed: the district and the plan of what happens in it. Pure:
the same seed, scale and calendar give the same world, item for item."""

from __future__ import annotations

import random
from dataclasses import dataclass

from scenario.calendar import Calendar
from scenario.campaign import plan_campaign
from scenario.chains import plan_chains
from scenario.district import District, build_district
from scenario.gates import plan_crossings, plan_gates
from scenario.ids import Ids
from scenario.plan import Plan
from scenario.scale import Scale
from scenario.watch import plan_care, plan_tests, plan_watches


@dataclass
class World:
    seed: int
    scale: Scale
    calendar: Calendar
    ids: Ids
    district: District
    plan: Plan


def build_world(seed: int, scale: Scale, calendar: Calendar) -> World:
    ids = Ids(seed)
    rng = random.Random(seed)
    district = build_district(scale, ids, rng)
    plan = Plan(
        campaign_id=ids.of("campaign", "拉网式排查"),
        risk_area_id=ids.of("risk-area", "武汉"),
        test_round_id=ids.of("test-round", 1),
    )
    plan_campaign(plan, district, calendar, scale, ids, rng)
    plan_watches(plan, calendar, ids, rng)
    plan_care(plan, calendar, ids, rng)
    plan_tests(plan, district, calendar, scale, ids, rng)
    plan_gates(plan, district, calendar, scale, ids)
    plan_crossings(plan, district, calendar, scale, ids, rng)
    plan_chains(plan, district, calendar, ids)
    return World(seed, scale, calendar, ids, district, plan)
