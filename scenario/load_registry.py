"""Registry: the place tree, the roster of each building / villager group / compound as
one CSV import (花名册), vehicles, parties, chain instances and assignments."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime

from scenario.district import Household, Person, Place
from scenario.http import Caller, ScenarioError, Services, gather
from scenario.observed import Observed
from scenario.world import World

RESIDENCY = {"resident": "常住", "temporary": "暂住", "visitor": "访客"}
HEADERS = ("单元", "楼层", "门牌号", "姓名", "证件类型", "身份证号", "联系电话", "人员类别", "标签")


def roster_csv(households: list[Household]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for h in households:
        for p in h.persons:
            writer.writerow(
                (
                    h.unit,
                    h.floor,
                    h.door,
                    p.name,
                    "身份证",
                    p.document_number,
                    p.phone or "",
                    RESIDENCY[p.residency],
                    "、".join(p.tags),
                )
            )
    return out.getvalue().encode()


async def load_places(world: World, services: Services, call: Caller) -> None:
    by_depth: defaultdict[int, list[Place]] = defaultdict(list)
    for p in world.district.places:
        by_depth[len(world.district.line_of(p.id))].append(p)
    for depth in sorted(by_depth):  # parents before children
        await gather(
            call.send(
                services.registry,
                "POST",
                "/v1/nodes",
                "admin" if p.parent_id is None else "registrar",
                {"id": p.id, "parent_id": p.parent_id, "kind": p.kind, "name": p.name},
            )
            for p in by_depth[depth]
        )


async def load_rosters(world: World, services: Services, call: Caller, seen: Observed) -> None:
    groups: defaultdict[str, list[Household]] = defaultdict(list)
    for h in world.district.households:
        groups[h.parent.id].append(h)

    async def one(parent_id: str, households: list[Household]) -> None:
        r = await call.send(
            services.registry,
            "POST",
            "/v1/imports/households",
            "registrar",
            content=roster_csv(households),
            content_type="text/csv",
            params={"parent_id": parent_id, "filename": "花名册.csv"},
        )
        rows = [p for h in households for p in h.persons]
        homes = [h for h in households for _ in h.persons]
        for result in r.json()["results"]:
            person: Person = rows[result["row"] - 2]  # row 1 is the header
            if result["status"] == "error":
                raise ScenarioError(f"roster row {result}")
            call.statuses[result["status"]] = call.statuses.get(result["status"], 0) + 1
            seen.person_ids[person.ref] = result["person_id"]
            seen.household_ids[homes[result["row"] - 2].ref] = result["household_id"]

    await gather(one(parent, hs) for parent, hs in groups.items())
    seen.registered_on = datetime.now(world.calendar.zone).date()


async def load_vehicles(world: World, services: Services, call: Caller, seen: Observed) -> None:
    await gather(
        call.send(
            services.registry,
            "POST",
            "/v1/vehicles",
            "registrar",
            {"id": h.vehicle_id, "household_id": seen.household_id(h.ref), "plate": h.plate},
        )
        for h in world.district.households
        if h.plate
    )


async def load_chains(world: World, services: Services, call: Caller, seen: Observed) -> None:
    plan = world.plan
    await gather(
        call.send(
            services.registry,
            "POST",
            "/v1/parties",
            "registrar",
            {"id": p.id, "kind": p.kind, "name": p.name, "role": p.role, "node_id": p.node_id},
        )
        for p in plan.parties
    )
    await gather(
        call.send(
            services.registry,
            "POST",
            "/v1/chain-instances",
            "registrar",
            {
                "id": i.id,
                "template_id": i.template_id,
                "root_node_id": i.root.id,
                "valid_from": str(i.valid_from),
            },
        )
        for i in plan.instances
    )
    valid_from = {i.id: str(i.valid_from) for i in plan.instances}

    def target(a: object) -> tuple[str, str]:
        if isinstance(a, Place):
            return "node", a.id
        if isinstance(a, Household):
            return "node", seen.household_id(a.ref)
        assert isinstance(a, Person)
        return "person", seen.person_id(a.ref)

    await gather(
        call.send(
            services.registry,
            "POST",
            "/v1/assignments",
            "registrar",
            {
                "id": a.id,
                "instance_id": a.instance_id,
                "level": a.level,
                "party_id": a.party_id,
                "target_type": target(a.target)[0],
                "target_id": target(a.target)[1],
                "valid_from": valid_from[a.instance_id],
            },
        )
        for a in plan.assignments
    )


async def load_registry(world: World, services: Services, call: Caller, seen: Observed) -> None:
    await load_places(world, services, call)
    await load_rosters(world, services, call, seen)
    await load_vehicles(world, services, call, seen)
    await load_chains(world, services, call, seen)
