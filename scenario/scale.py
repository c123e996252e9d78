"""How big the district is: `small` loads in seconds (make up, the acceptance test),
`large` has over 100k persons and over a million events (benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    # the urban street (普阳街道): communities split into grids (15 → 156 at large scale)
    communities: int
    grids: int
    compounds_per_grid: int
    buildings_per_compound: int
    units: int
    floors: int
    doors: int
    # the rural township (关王庙乡): 片 → 村 → 段 → 自然村 → 村民组 → 户, plus town compounds
    areas: int
    villages_per_area: int
    natural_villages_per_village: int
    groups_per_natural_village: int
    households_per_group: int
    town_compounds: int
    households_per_town_compound: int
    # checkpoints (卡口) of the township: township / village / natural village / compound
    township_gates: int
    village_gates: int
    natural_village_gates: int
    compound_gates: int
    # the simulation
    days: int
    crossings_per_gate_day: int
    inquiry_share: float
    tested_share: float


SMALL = Scale(
    name="small",
    communities=2,
    grids=4,
    compounds_per_grid=2,
    buildings_per_compound=2,
    units=2,
    floors=3,
    doors=2,
    areas=1,
    villages_per_area=2,
    natural_villages_per_village=2,
    groups_per_natural_village=1,
    households_per_group=6,
    town_compounds=1,
    households_per_town_compound=6,
    township_gates=1,
    village_gates=2,
    natural_village_gates=2,
    compound_gates=1,
    days=4,
    crossings_per_gate_day=8,
    inquiry_share=0.3,
    tested_share=0.2,
)

LARGE = Scale(
    name="large",
    communities=15,
    grids=156,
    compounds_per_grid=3,
    buildings_per_compound=3,
    units=2,
    floors=6,
    doors=2,
    areas=2,
    villages_per_area=4,
    natural_villages_per_village=2,
    groups_per_natural_village=3,
    households_per_group=40,
    town_compounds=3,
    households_per_town_compound=200,
    township_gates=2,
    village_gates=8,
    natural_village_gates=16,
    compound_gates=3,
    days=10,
    crossings_per_gate_day=2500,
    inquiry_share=1.0,
    tested_share=0.8,
)

SCALES = {s.name: s for s in (SMALL, LARGE)}
