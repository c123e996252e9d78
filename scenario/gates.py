"""Checkpoints of the township and the closed compounds (卡口: 2 township, 8 village,
16 natural-village, 3 compound gates at large scale), their 24-hour duty shifts, and the
crossings at them: 逢人必检、逢车必查 — residents, strangers, red codes, fevers, arrivals from
the risk area, stale test reports, vehicles, and people under watch trying to leave."""

from __future__ import annotations

import random
from bisect import bisect_left
from datetime import datetime, timedelta
from typing import Any

from scenario.calendar import Calendar
from scenario.district import District, Household, Place
from scenario.ids import RISK_REGION, Documents, Ids
from scenario.plan import Crossing, Gate, Plan, Shift, WatchPlan
from scenario.scale import Scale

BASE = {"residents_only": False, "health_code_colours": ["green"], "temperature_threshold": 37.3}
POLICIES: dict[str, dict[str, Any]] = {
    "county": {**BASE, "risk_area_arrivals": "refer"},
    "township": {**BASE, "risk_area_arrivals": "persuade_return"},
    "village": {**BASE, "risk_area_arrivals": "refer"},
    "natural_village": {
        **BASE,
        "test_report_max_hours": 48,
        "risk_area_arrivals": "persuade_return",
    },
    "compound": {**BASE, "residents_only": True, "risk_area_arrivals": "refer"},
}
CASES = (
    ("resident_out", 20),
    ("resident_in", 20),
    ("stranger_in", 10),
    ("red_code", 5),
    ("no_code", 3),
    ("fever", 4),
    ("risk_origin", 6),
    ("stale_report", 5),
    ("vehicle_in", 10),
    ("stranger_vehicle", 4),
    ("quarantined_out", 6),
    ("observed_out", 3),
)
# the district gate shows each of these every day, whatever the dice say
EVERY_DAY = ("quarantined_out", "observed_out", "risk_origin", "fever", "red_code", "vehicle_in")
SHIFTS = ((0, 12, "police"), (12, 24, "volunteer"))


def spread(items: list[Place], n: int) -> list[Place]:
    """n of `items`, evenly apart."""
    if n >= len(items):
        return items
    return [items[i * len(items) // n] for i in range(n)]


def plan_gates(plan: Plan, district: District, cal: Calendar, scale: Scale, ids: Ids) -> None:
    t = district.township
    placed: list[tuple[Place, str, str]] = [(district.root, "county", "区级监测卡点")]
    placed += [(t, "township", f"{t.name}{i + 1}号卡口") for i in range(scale.township_gates)]
    for level, kind, count in (
        ("village", "village", scale.village_gates),
        ("natural_village", "natural_village", scale.natural_village_gates),
        ("compound", "compound", scale.compound_gates),
    ):
        for node in spread(district.of_kind(kind, under=t.id), count):
            placed.append((node, level, f"{node.name}卡口"))
    for community in district.of_kind("community"):
        first = district.of_kind("compound", under=community.id)[0]
        placed.append((first, "compound", f"{first.name}门岗"))
    for i, (node, level, name) in enumerate(placed):
        gate = Gate(ids.of("gate", node.id, i), node, name, level, POLICIES[level])
        plan.gates.append(gate)
        for day in [*cal.dates, cal.today]:
            for start, end, role in SHIFTS:
                plan.shifts.append(
                    Shift(
                        ids.of("shift", gate.id, day, start),
                        gate,
                        f"gatekeeper-{i + 1}-{role}",
                        role,
                        cal.at(day, start),
                        cal.at(day, end),
                    )
                )


class Watched:
    """The watches of the people living behind a gate, to pick one under way at a moment."""

    def __init__(self, watches: list[WatchPlan]) -> None:
        self.watches = watches
        self.starts = sorted(w.starts_at for w in watches)
        self.under_way: dict[tuple[int, bool], list[WatchPlan]] = {}

    def started_before(self, at: datetime, observation: bool) -> list[WatchPlan]:
        """In plan order; the same for every moment between two starts, so kept."""
        key = (bisect_left(self.starts, at), observation)
        if key not in self.under_way:
            self.under_way[key] = [
                w
                for w in self.watches
                if w.starts_at < at and (w.kind == "observation") == observation
            ]
        return self.under_way[key]


class Crossings:
    def __init__(
        self, plan: Plan, district: District, cal: Calendar, ids: Ids, rng: random.Random
    ) -> None:
        self.plan, self.cal, self.ids, self.rng = plan, cal, ids, rng
        self.documents = Documents(rng)
        self.documents.issued.update(p.document_number for p in district.persons)
        self.district = district
        self._owners: tuple[list[Household], list[Household]] = ([], [])

    def plan_all(self, per_gate_day: int) -> None:
        cases, weights = zip(*CASES, strict=True)
        for gate in self.plan.gates:
            residents = [h for h in self.district.households if gate.node.id in h.line]
            watched = Watched([w for w in self.plan.watches if gate.node.id in w.household.line])
            for day in self.cal.dates:
                for n in range(per_gate_day):
                    at = self.cal.at(day, 6) + timedelta(seconds=self.rng.randrange(16 * 3600))
                    case = self.rng.choices(cases, weights)[0]
                    if gate.level == "county" and n < len(EVERY_DAY):
                        case = EVERY_DAY[n]
                    body = self.body(case, gate, residents, watched, at)
                    if body is None:
                        case = "resident_out"
                        body = self.body(case, gate, residents, Watched([]), at)
                    assert body is not None
                    cid = self.ids.of("crossing", gate.id, day, n)
                    body.update(id=cid, checkpoint_id=gate.id, occurred_at=at.isoformat())
                    self.plan.crossings.append(Crossing(cid, gate, at, body, case))

    def owners(self, residents: list[Household]) -> list[Household]:
        """The households behind a gate that own a vehicle (computed once per gate)."""
        if self._owners[0] is not residents:
            self._owners = (residents, [h for h in residents if h.plate])
        return self._owners[1]

    def person(self, number: str, direction: str, at: datetime, **extra: Any) -> dict[str, Any]:
        body = {
            "kind": "person",
            "direction": direction,
            "document_type": "resident_id",
            "document_number": number,
            "temperature": round(self.rng.uniform(36.1, 36.9), 1),
            "health_code": "green",
            "test_report_at": (at - timedelta(hours=self.rng.randrange(4, 30))).isoformat(),
        }
        body.update(extra)
        return body

    def body(
        self,
        case: str,
        gate: Gate,
        residents: list[Household],
        watched: Watched,
        at: datetime,
    ) -> dict[str, Any] | None:
        rng = self.rng
        resident = rng.choice(rng.choice(residents).persons).document_number if residents else None
        stranger = self.documents.resident_id()
        if case in ("resident_out", "resident_in") and resident:
            return self.person(resident, case.removeprefix("resident_"), at)
        if case == "stranger_in":
            return self.person(stranger, "in", at, origin="四川省德阳市广汉市")
        if case in ("red_code", "no_code"):
            return self.person(
                stranger, "in", at, health_code="red" if case == "red_code" else None
            )
        if case == "fever":
            return self.person(stranger, "in", at, temperature=round(rng.uniform(37.5, 38.5), 1))
        if case == "risk_origin":
            return self.person(
                stranger, "in", at, origin="武汉市武昌区", origin_region_code=RISK_REGION
            )
        if case == "stale_report":
            stale = (at - timedelta(hours=rng.randrange(60, 120))).isoformat()
            return self.person(resident or stranger, "in", at, test_report_at=stale)
        if case in ("vehicle_in", "stranger_vehicle"):
            owners = self.owners(residents)
            if case == "vehicle_in" and not owners:
                return None
            if case == "vehicle_in":
                h = rng.choice(owners)
                plate, riders = h.plate, [p.document_number for p in h.persons[:2]]
            else:
                plate = "豫Q" + "".join(rng.choice("0123456789") for _ in range(5))
                riders = [stranger]
            return {
                "kind": "vehicle",
                "direction": "in",
                "plate": plate,
                "passengers": [
                    {"document_type": "resident_id", "document_number": n} for n in riders
                ],
                "temperature": 36.5,
                "health_code": "green",
                "test_report_at": (at - timedelta(hours=6)).isoformat(),
            }
        if case in ("quarantined_out", "observed_out"):
            inside = watched.started_before(at, observation=case == "observed_out")
            if not inside:
                return None
            return self.person(rng.choice(inside).person.document_number, "out", at)
        return None


def plan_crossings(
    plan: Plan, district: District, cal: Calendar, scale: Scale, ids: Ids, rng: random.Random
) -> None:
    Crossings(plan, district, cal, ids, rng).plan_all(scale.crossings_per_gate_day)
