"""The district as it stands: places, households, people and vehicles. Pure.

Shaped like the seeds: an urban street (普阳街道) of communities, grids (网格), compounds
(小区) and buildings (楼栋) whose units, floors and doors come with the roster import, and a
rural township (关王庙乡) of areas (片), villages, segments (段), natural villages (自然村)
and villager groups (村民组), plus a few town compounds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from scenario.ids import Documents, Ids
from scenario.scale import Scale

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文春梅"
COMMUNITY_NAMES = "幸福 和平 红旗 东风 建设 团结 光明 民主 胜利 友谊 新华 振兴 繁荣 前进 长青"
VILLAGE_NAMES = "王庄 李寨 刘楼 陈湾 杨店 黄营 赵岗 吴集 周堂 徐桥 孙庙 马铺"
VULNERABLE = ("特困", "低保", "残疾", "孤寡老人")
HOUSEHOLD_SIZES = (1, 2, 2, 3, 3, 3, 4, 4, 5)


@dataclass(frozen=True)
class Place:
    id: str
    parent_id: str | None
    kind: str
    name: str


@dataclass(frozen=True)
class Person:
    ref: str
    name: str
    document_number: str
    phone: str | None
    residency: str
    tags: tuple[str, ...]


@dataclass
class Household:
    """A household the roster import creates under `parent` (a building, villager group or
    compound) from its unit, floor and door; `line` is the scenario's places above it."""

    ref: str
    parent: Place
    line: tuple[str, ...]
    unit: str
    floor: str
    door: str
    persons: list[Person] = field(default_factory=list)
    plate: str | None = None
    vehicle_id: str | None = None


@dataclass
class District:
    root: Place
    street: Place
    township: Place
    places: list[Place] = field(default_factory=list)
    households: list[Household] = field(default_factory=list)
    lines: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add(self, place: Place) -> Place:
        above = self.lines[place.parent_id] if place.parent_id else ()
        self.lines[place.id] = (*above, place.id)
        self.places.append(place)
        return place

    def of_kind(self, kind: str, under: str | None = None) -> list[Place]:
        return [
            p
            for p in self.places
            if p.kind == kind and (under is None or under in self.lines[p.id])
        ]

    def line_of(self, place_id: str) -> tuple[str, ...]:
        """Ids from the root down to `place_id`."""
        return self.lines[place_id]

    @property
    def persons(self) -> list[Person]:
        return [p for h in self.households for p in h.persons]


class Builder:
    def __init__(self, scale: Scale, ids: Ids, rng: random.Random) -> None:
        self.scale, self.ids, self.rng = scale, ids, rng
        self.documents = Documents(rng)
        self.plates: set[str] = set()

    def place(self, d: District, parent: Place | None, kind: str, name: str) -> Place:
        path = f"{parent.id}/{kind}/{name}" if parent else f"{kind}/{name}"
        return d.add(Place(self.ids.of("place", path), parent.id if parent else None, kind, name))

    def build(self) -> District:
        root = Place(self.ids.of("place", "district"), None, "district", "示范区")
        street = Place(self.ids.of("place", "street"), root.id, "street", "普阳街道")
        township = Place(self.ids.of("place", "township"), root.id, "township", "关王庙乡")
        d = District(root, street, township)
        for p in (root, street, township):
            d.add(p)
        self.urban(d)
        self.rural(d)
        return d

    def urban(self, d: District) -> None:
        s = self.scale
        names = COMMUNITY_NAMES.split()
        communities = [
            self.place(
                d, d.street, "community", f"{names[i % len(names)]}社区{i // len(names) or ''}"
            )
            for i in range(s.communities)
        ]
        for g in range(s.grids):
            community = communities[g % s.communities]
            grid = self.place(d, community, "grid", f"第{g // s.communities + 1}网格")
            for c in range(s.compounds_per_grid):
                compound = self.place(d, grid, "compound", f"{grid.name}{c + 1}号小区")
                for b in range(s.buildings_per_compound):
                    building = self.place(d, compound, "building", f"{b + 1}栋")
                    for u in range(s.units):
                        for f in range(s.floors):
                            for n in range(s.doors):
                                self.household(
                                    d, building, f"{u + 1}单元", f"{f + 1}层", f"{f + 1}0{n + 1}"
                                )

    def rural(self, d: District) -> None:
        s, names = self.scale, VILLAGE_NAMES.split()
        v = 0
        for a in range(s.areas):
            area = self.place(d, d.township, "area", f"第{a + 1}片")
            for _ in range(s.villages_per_area):
                village = self.place(
                    d, area, "village", f"{names[v % len(names)]}村{v // 12 or ''}"
                )
                segment = self.place(d, village, "segment", f"{village.name}段")
                v += 1
                for n in range(s.natural_villages_per_village):
                    natural = self.place(d, segment, "natural_village", f"{village.name}{n + 1}庄")
                    for g in range(s.groups_per_natural_village):
                        group = self.place(d, natural, "villager_group", f"{natural.name}{g + 1}组")
                        for h in range(s.households_per_group):
                            self.household(d, group, "", "", f"{h + 1}号")
        for c in range(s.town_compounds):
            compound = self.place(d, d.township, "compound", f"乡政府{c + 1}号小区")
            for h in range(s.households_per_town_compound):
                self.household(
                    d, compound, f"{h // 12 + 1}单元", f"{h % 12 // 2 + 1}层", f"{h + 1}"
                )

    def household(self, d: District, parent: Place, unit: str, floor: str, door: str) -> None:
        ref = self.ids.of("household", parent.id, unit, floor, door)
        h = Household(ref, parent, d.line_of(parent.id), unit, floor, door)
        size = self.rng.choice(HOUSEHOLD_SIZES)
        surname = self.rng.choice(SURNAMES)
        for i in range(size):
            number = self.documents.resident_id()
            tags: tuple[str, ...] = ()
            if self.rng.random() < 0.05:
                tags = (self.rng.choice(VULNERABLE),)
            residency = self.rng.choices(("resident", "temporary", "visitor"), (85, 12, 3))[0]
            name = surname + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2))))
            phone = self.documents.phone() if i == 0 else None
            h.persons.append(
                Person(self.ids.of("person", number), name, number, phone, residency, tags)
            )
        if self.rng.random() < 0.2:
            h.plate = self.plate()
            h.vehicle_id = self.ids.of("vehicle", h.plate)
        d.households.append(h)

    def plate(self) -> str:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        while True:
            plate = "川A" + "".join(self.rng.choice(letters) for _ in range(5))
            if plate not in self.plates:
                self.plates.add(plate)
                return plate


def build_district(scale: Scale, ids: Ids, rng: random.Random) -> District:
    return Builder(scale, ids, rng).build()
