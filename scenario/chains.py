"""Responsibility chains (包保): the 4-level chain over the urban street (区级包街道、班子和部门
包社区、科室包小区、社区包楼栋) and the 6-level chain over the rural township (领导包片、驻村
干部包村、派出所包段、村包组、组包户、医护人员包人), with a few deliberate blind spots (死角)."""

from __future__ import annotations

from datetime import timedelta

from scenario.calendar import Calendar
from scenario.district import District, Household, Person, Place
from scenario.ids import Ids
from scenario.plan import Assignment, ChainInstance, Party, Plan

# (tier, kind of place covered, party role, party kind, party name pattern)
BAOBAO_4 = (
    (1, "street", "district_leader", "person", "区级领导{n}"),
    (2, "community", "street_cadre", "person", "街道班子成员{n}"),
    (3, "compound", "section", "unit", "街道科室{n}"),
    (4, "building", "community", "unit", "社区工作站{n}"),
)
BAOBAO_6 = (
    (1, "area", "leader", "person", "联系领导{n}"),
    (2, "village", "resident_cadre", "person", "驻村干部{n}"),
    (3, "segment", "police_station", "unit", "派出所警务区{n}"),
    (4, "villager_group", "village", "unit", "村委会{n}"),
    (5, "household", "group", "person", "村民组长{n}"),
    (6, "person", "medic", "person", "卫生院医生{n}"),
)


class Chains:
    def __init__(self, plan: Plan, district: District, cal: Calendar, ids: Ids) -> None:
        self.plan, self.district, self.ids = plan, district, ids
        self.valid_from = cal.anchor - timedelta(days=1)

    def party(self, role: str, kind: str, name: str, node: Place) -> Party:
        p = Party(self.ids.of("party", role, node.id, name), kind, name, role, node.id)
        self.plan.parties.append(p)
        return p

    def apply(
        self, template: str, root: Place, tiers: tuple[tuple[int, str, str, str, str], ...]
    ) -> None:
        instance = ChainInstance(
            self.ids.of("chain", template, root.id), template, root, self.valid_from
        )
        self.plan.instances.append(instance)
        for level, kind, role, party_kind, pattern in tiers:
            targets = self.targets(kind, root)
            blind = self.blind(kind, targets)
            for n, target in enumerate(targets):
                if target in blind:
                    target_id = target.id if isinstance(target, Place) else target.ref
                    self.plan.blind_spots.append((instance.id, level, target_id))
                    continue
                home = target if isinstance(target, Place) else self.home_place(target)
                party = self.party(role, party_kind, pattern.format(n=n + 1), home)
                self.plan.assignments.append(
                    Assignment(
                        self.ids.of("assignment", instance.id, level, n),
                        instance.id,
                        level,
                        party.id,
                        target,
                    )
                )

    def targets(self, kind: str, root: Place) -> list[Place | Household | Person]:
        if kind == "household":
            return [h for h in self.district.households if root.id in h.line]
        if kind == "person":  # 医护人员包人: the people under watch
            return [w.person for w in self.plan.watches if root.id in w.household.line]
        if kind == root.kind:
            return [root]
        return list(self.district.of_kind(kind, under=root.id))

    @staticmethod
    def blind(
        kind: str, targets: list[Place | Household | Person]
    ) -> list[Place | Household | Person]:
        """The last compound, the last two buildings, the last villager group."""
        if kind in ("compound", "villager_group") and len(targets) > 1:
            return targets[-1:]
        if kind == "building" and len(targets) > 2:
            return targets[-2:]
        return []

    def home_place(self, target: Household | Person) -> Place:
        if isinstance(target, Household):
            return target.parent
        home = next(h for h in self.district.households if target in h.persons)
        return home.parent


def plan_chains(plan: Plan, district: District, cal: Calendar, ids: Ids) -> None:
    chains = Chains(plan, district, cal, ids)
    chains.apply("baobao-4", district.street, BAOBAO_4)
    chains.apply("baobao-6", district.township, BAOBAO_6)
