"""The figures reporting must show, computed from what the scenario sent and what the
services answered (gate decisions, flagged key persons, follow-ups done and missed).

Kept independently of reporting's code, from the rules in DESIGN §5 and docs: a flow counts
on the day of its `occurred_at` in the system zone, at the place it concerns and every place
above it; a stock is the running sum of its changes up to the end of a day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from scenario.district import Household
from scenario.observed import Observed
from scenario.world import World

FEVER = 37.3
VULNERABLE = frozenset({"特困", "低保", "残疾", "孤寡老人"})
CORE_STOCKS = (
    "households",
    "persons",
    "vulnerable",
    "screened_households",
    "key_persons",
    "under_observation",
    "under_quarantine",
)
# counted by the scheduler as windows close, so on the load day they depend on the hour
OPEN_ENDED_TODAY = ("followups.", "care.")


@dataclass
class Truth:
    today: date
    flows: defaultdict[tuple[str, date], defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    stock_changes: defaultdict[str, list[tuple[date, str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def flow(self, line: tuple[str, ...], day: date, metric: str, n: int = 1) -> None:
        for node in line:
            self.flows[(node, day)][metric] += n

    def stock(self, line: tuple[str, ...], day: date, metric: str, n: int = 1) -> None:
        metric = metric.removeprefix("stock.")
        for node in line:
            self.stock_changes[node].append((day, metric, n))

    def figures(self, node: str, day: date) -> dict[str, Any]:
        """`flows`, `stocks` and `coverage_pct` as reporting's summary shows them."""
        flows = {m: v for m, v in self.flows[(node, day)].items() if v}
        if day >= self.today:
            flows = {m: v for m, v in flows.items() if not m.startswith(OPEN_ENDED_TODAY)}
        stocks: dict[str, int] = dict.fromkeys(CORE_STOCKS, 0)
        for when, metric, n in self.stock_changes[node]:
            if when <= day:
                stocks[metric] = stocks.get(metric, 0) + n
        stocks = {m: v for m, v in stocks.items() if v or m in CORE_STOCKS}
        households = stocks["households"]
        coverage = (
            round(100.0 * stocks["screened_households"] / households, 2) if households > 0 else None
        )
        return {
            "flows": dict(sorted(flows.items())),
            "stocks": dict(sorted(stocks.items())),
            "coverage_pct": coverage,
        }


def local_day(moment: str | datetime, world: World) -> date:
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return at.astimezone(world.calendar.zone).date()


class Reckoner:
    def __init__(self, world: World, seen: Observed) -> None:
        self.world, self.seen = world, seen
        self.truth = Truth(world.calendar.today)
        d = world.district
        self.home = {p.ref: h for h in d.households for p in h.persons}
        # households are places too (the roster import made them): figures count there as well
        self.lines: dict[str, tuple[str, ...]] = {
            h.ref: (*h.line, seen.household_id(h.ref)) for h in d.households
        }
        self.line_of_id: dict[str, tuple[str, ...]] = dict(d.lines)
        for h in d.households:
            self.line_of_id[seen.household_id(h.ref)] = self.lines[h.ref]
        self.person_line = {
            seen.person_id(p.ref): self.lines[self.home[p.ref].ref] for p in d.persons
        }

    def line(self, h: Household) -> tuple[str, ...]:
        return self.lines[h.ref]

    def count(self) -> Truth:
        self.people()
        self.visits()
        self.inquiries()
        self.key_persons()
        self.watches()
        self.follow_ups()
        self.tests()
        self.crossings()
        return self.truth

    def people(self) -> None:
        t, day = self.truth, self.seen.registered_on
        assert day is not None
        for h in self.world.district.households:
            line = self.line(h)
            t.stock(line, day, "stock.households")
            for p in h.persons:
                t.stock(line, day, "stock.persons")
                t.stock(line, day, f"stock.persons.{p.residency}")
                if VULNERABLE & set(p.tags):
                    t.stock(line, day, "stock.vulnerable")

    def visits(self) -> None:
        t, screened_since = self.truth, dict[str, date]()
        for v in self.world.plan.visits:
            day, line = local_day(v.at, self.world), self.line(v.household)
            t.flow(line, day, "visits")
            t.flow(line, day, f"visits.{v.method}")
            t.flow(line, day, f"visits.outcome.{v.outcome}")
            if v.signed:
                t.flow(line, day, "visits.signed")
            if v.outcome == "screened":  # a visit screens its household
                ref = v.household.ref
                screened_since[ref] = min(day, screened_since.get(ref, day))
        for h in self.world.district.households:
            if h.ref in screened_since:
                t.stock(self.line(h), screened_since[h.ref], "stock.screened_households")

    def inquiries(self) -> None:
        for q in self.world.plan.inquiries:
            day, line = local_day(q.at, self.world), self.line(q.household)
            self.truth.flow(line, day, "inquiries")
            if q.temperature is not None and q.temperature >= FEVER:
                self.truth.flow(line, day, "fevers")

    def key_persons(self) -> None:
        """From screening's own account of each key person (its history of flags)."""
        t = self.truth
        for k in self.seen.key_persons:
            line = self.line_of_id.get(k["node_id"] or "")
            if line is None:
                continue  # not in this scenario's district
            reasons: set[str] | None = None
            for entry in sorted(k["history"], key=lambda e: e["version"]):
                day = local_day(entry["occurred_at"], self.world)
                if entry["type"] == "KeyPersonFlagged":
                    if reasons is None:
                        t.flow(line, day, "key_persons.flagged")
                        t.stock(line, day, "stock.key_persons")
                        reasons = set()
                    for r in sorted(set(entry["reasons"]) - reasons):
                        t.flow(line, day, f"key_persons.flagged.{r}")
                        t.stock(line, day, f"stock.key_persons.{r}")
                    reasons |= set(entry["reasons"])
                elif reasons is not None:
                    t.flow(line, day, "key_persons.cleared")
                    t.stock(line, day, "stock.key_persons", -1)
                    for r in sorted(reasons):
                        t.stock(line, day, f"stock.key_persons.{r}", -1)
                    reasons = None

    def watches(self) -> None:
        t, seen = self.truth, self.seen
        for w in self.world.plan.watches:
            line, day = self.line(w.household), local_day(w.starts_at, self.world)
            held = (
                "stock.under_observation" if w.kind == "observation" else "stock.under_quarantine"
            )
            if w.kind == "observation":
                t.flow(line, day, "observations.started")
            else:
                t.flow(line, day, "quarantines.ordered")
                t.flow(line, day, f"quarantines.ordered.{w.kind}")
                t.stock(line, day, f"{held}.{w.kind}")
            t.stock(line, day, held)
            if w.id in seen.extended_on:
                t.flow(line, seen.extended_on[w.id], "quarantines.extended")
            if w.id in seen.released_on:
                end = seen.released_on[w.id]
                released = "observations" if w.kind == "observation" else "quarantines"
                t.flow(line, end, f"{released}.released")
                t.stock(line, end, held, -1)
                if w.kind != "observation":
                    t.stock(line, end, f"{held}.{w.kind}", -1)

    def follow_ups(self) -> None:
        t = self.truth
        for subject, answer in self.seen.follow_ups.items():
            line = self.person_line[subject]
            for r in answer["readings"]:
                day = local_day(r["occurred_at"], self.world)
                t.flow(line, day, "followups.done")
                if r["late"]:
                    t.flow(line, day, "followups.late")
                if r["celsius"] >= FEVER:
                    t.flow(line, day, "fevers")
            for m in answer["missed"]:
                t.flow(line, local_day(m["closed_at"], self.world), "followups.missed")
        for subject, answer in self.seen.care.items():
            line = self.person_line[subject]
            for c in answer["done"]:
                day = local_day(c["occurred_at"], self.world)
                t.flow(line, day, "care.done")
                if c["late"]:
                    t.flow(line, day, "care.late")
            for m in answer["missed"]:
                t.flow(line, local_day(m["closed_at"], self.world), "care.missed")

    def tests(self) -> None:
        t, seen = self.truth, self.seen
        for s in self.world.plan.samples:
            line = self.line(s.household)
            t.flow(line, local_day(s.at, self.world), "tests.sampled")
            if s.id in seen.resulted_on:
                t.flow(line, seen.resulted_on[s.id], "tests.resulted")
                if s.result == "positive":
                    t.flow(line, seen.resulted_on[s.id], "tests.positive")
        for d in self.world.plan.doses:
            day = local_day(d.at, self.world)
            t.flow(self.line(d.household), day, "vaccination.doses")
            t.flow(self.line(d.household), day, f"vaccination.dose.{d.number}")

    def crossings(self) -> None:
        t = self.truth
        for c in self.world.plan.crossings:
            answer = self.seen.crossings[c.id]
            line, day = self.world.district.line_of(c.gate.node.id), local_day(c.at, self.world)
            t.flow(line, day, "crossings")
            t.flow(line, day, f"crossings.{answer['decision']}")
            if answer.get("breaches"):
                t.flow(line, day, "breaches", len(answer["breaches"]))


def reckon(world: World, seen: Observed) -> Truth:
    return Reckoner(world, seen).count()
