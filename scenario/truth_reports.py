"""Daily-report completeness (日报告 / 零报告) the scenario must see per level and day: every
report it sent was sent after the day's deadline, so each counts as late (zero or not), the
nodes it skipped as missing, and the figures of the reports add up in the roll-up."""

from __future__ import annotations

from datetime import date
from typing import Any

from scenario.world import World


def expected_completeness(world: World, level: str, day: date) -> dict[str, Any]:
    nodes = world.district.of_kind(level)
    sent = [r for r in world.plan.reports if r.node.kind == level and r.day == day]
    rollup: dict[str, int] = {}
    for r in sent:
        for name, value in r.figures.items():
            rollup[name] = rollup.get(name, 0) + value
    counts = {"submitted": 0, "zero": 0, "late": len(sent), "missing": len(nodes) - len(sent),
              "pending": 0, "reported": len(sent), "total": len(nodes)}  # fmt: skip
    return {
        "counts": counts,
        "rollup": rollup,
        "zero": sorted(r.node.id for r in sent if r.zero),
    }
