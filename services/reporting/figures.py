"""Figures per node and day: which event adds what to which metric. Pure, no I/O.

A metric is a text key. *Flows* count what happened on a day (`visits.door`,
`crossings.deny`); *stocks* (keys starting with `stock.`) are stored as deltas on the day of
the change, so a stock at the end of day D is the sum of its deltas over days <= D.

The functions here take an event (and, where a figure depends on what came before, the prior
state the projection keeps) and return the changes; the projection (`projections_figures`)
places them on a node and its ancestors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from shared.contracts.checkpoint import CrossingRecorded
from shared.contracts.screening import (
    CareTaskCompleted,
    HouseholdVisited,
    PersonInquired,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    SampleCollected,
    TemperatureRecorded,
    TestResulted,
    VaccineDoseGiven,
)

STOCK = "stock."
FEVER_CELSIUS = 37.3
VULNERABLE_TAGS = frozenset({"特困", "低保", "残疾", "孤寡老人"})

Change = tuple[str, int]
"""(metric, delta)"""


def day_of(moment: datetime, zone: tzinfo) -> date:
    """The day a fact belongs to: the date of `occurred_at` in the system's zone."""
    return moment.astimezone(zone).date()


def is_stock(metric: str) -> bool:
    return metric.startswith(STOCK)


# -- registry: households and people ------------------------------------------------------


def household_registered() -> list[Change]:
    return [("stock.households", 1)]


def person_stock(residency: str, tags: Iterable[str], sign: int = 1) -> list[Change]:
    """What one person adds to the stocks of their household (sign -1: takes it away)."""
    changes = [("stock.persons", sign), (f"stock.persons.{residency}", sign)]
    if VULNERABLE_TAGS & set(tags):
        changes.append(("stock.vulnerable", sign))
    return changes


def residency_changed(previous: str, residency: str) -> list[Change]:
    if previous == residency:
        return []
    return [(f"stock.persons.{previous}", -1), (f"stock.persons.{residency}", 1)]


def tags_changed(before: Iterable[str], after: Iterable[str]) -> list[Change]:
    was, now = bool(VULNERABLE_TAGS & set(before)), bool(VULNERABLE_TAGS & set(after))
    if was == now:
        return []
    return [("stock.vulnerable", 1 if now else -1)]


# -- screening: visits and the screened-household stock ------------------------------------


def visit_flows(e: HouseholdVisited) -> list[Change]:
    changes = [("visits", 1), (f"visits.{e.method}", 1), (f"visits.outcome.{e.outcome}", 1)]
    if e.commitment_signed:
        changes.append(("visits.signed", 1))
    return changes


def screened_since_moved(before: date | None, after: date | None) -> list[tuple[date, int]]:
    """The household counts as screened from the day of its earliest standing visit that
    screens it (the event's `screens_household`); when that day changes (a new earlier visit,
    a void), move the +1."""
    if before == after:
        return []
    moves: list[tuple[date, int]] = []
    if before is not None:
        moves.append((before, -1))
    if after is not None:
        moves.append((after, 1))
    return moves


def inquiry_flows(e: PersonInquired) -> list[Change]:
    changes = [("inquiries", 1)]
    if e.temperature is not None and e.temperature >= FEVER_CELSIUS:
        changes.append(("fevers", 1))
    return changes


# -- key persons ------------------------------------------------------------------------------


def key_person_flagged(before: frozenset[str] | None, reasons: Iterable[str]) -> list[Change]:
    """`before`: the reasons the subject already stands flagged for (None: not a key person).
    A repeated flag adds only its new reasons."""
    new = sorted(set(reasons) - (before or frozenset()))
    changes: list[Change] = []
    if before is None:
        changes += [("key_persons.flagged", 1), ("stock.key_persons", 1)]
    for reason in new:
        changes += [(f"key_persons.flagged.{reason}", 1), (f"stock.key_persons.{reason}", 1)]
    return changes


def key_person_cleared(before: frozenset[str] | None) -> list[Change]:
    if before is None:
        return []
    changes: list[Change] = [("key_persons.cleared", 1), ("stock.key_persons", -1)]
    changes += [(f"stock.key_persons.{reason}", -1) for reason in sorted(before)]
    return changes


# -- watch and quarantine ----------------------------------------------------------------------

Watch = str | None
"""What a subject is under now: `observation`, a quarantine type, or None."""


def _leave(watch: Watch) -> list[Change]:
    if watch is None:
        return []
    if watch == "observation":
        return [("stock.under_observation", -1)]
    return [("stock.under_quarantine", -1), (f"stock.under_quarantine.{watch}", -1)]


def _enter(watch: Watch) -> list[Change]:
    if watch is None:
        return []
    if watch == "observation":
        return [("stock.under_observation", 1)]
    return [("stock.under_quarantine", 1), (f"stock.under_quarantine.{watch}", 1)]


@dataclass(frozen=True)
class WatchStep:
    changes: list[Change]
    watch: Watch


def observation_started(watch: Watch) -> WatchStep:
    return WatchStep(
        [("observations.started", 1), *_leave(watch), *_enter("observation")], "observation"
    )


def quarantine_ordered(watch: Watch, e: QuarantineOrdered) -> WatchStep:
    flows: list[Change] = [("quarantines.ordered", 1), (f"quarantines.ordered.{e.type}", 1)]
    return WatchStep([*flows, *_leave(watch), *_enter(e.type)], e.type)


def quarantine_extended(watch: Watch) -> WatchStep:
    return WatchStep([("quarantines.extended", 1)], watch)


def quarantine_released(watch: Watch, e: QuarantineReleased) -> WatchStep:
    flow = "observations.released" if e.quarantine_id is None else "quarantines.released"
    return WatchStep([(flow, 1), *_leave(watch)], None)


def quarantine_transferred(watch: Watch, e: QuarantineTransferred) -> WatchStep:
    after: Watch = "centralized" if e.to == "centralized" else None
    changes: list[Change] = [("quarantines.transferred", 1), (f"quarantines.transferred.{e.to}", 1)]
    if after != watch:
        changes += [*_leave(watch), *_enter(after)]
    return WatchStep(changes, after)


# -- follow-ups, care, tests, vaccination ----------------------------------------------------


def temperature_flows(e: TemperatureRecorded) -> list[Change]:
    changes = [("followups.done", 1)]
    if e.late:
        changes.append(("followups.late", 1))
    if e.celsius >= FEVER_CELSIUS:
        changes.append(("fevers", 1))
    return changes


def followup_missed() -> list[Change]:
    return [("followups.missed", 1)]


def care_done(e: CareTaskCompleted) -> list[Change]:
    changes = [("care.done", 1)]
    if e.late:
        changes.append(("care.late", 1))
    return changes


def care_missed() -> list[Change]:
    return [("care.missed", 1)]


def sample_collected(e: SampleCollected) -> list[Change]:
    return [("tests.sampled", 1)]


def result_flows(e: TestResulted) -> list[Change]:
    changes = [("tests.resulted", 1)]
    if e.result == "positive":
        changes.append(("tests.positive", 1))
    return changes


def dose_given(e: VaccineDoseGiven) -> list[Change]:
    return [("vaccination.doses", 1), (f"vaccination.dose.{e.dose_number}", 1)]


# -- checkpoint ------------------------------------------------------------------------------


def crossing_flows(e: CrossingRecorded) -> list[Change]:
    return [("crossings", 1), (f"crossings.{e.decision}", 1)]


def breach() -> list[Change]:
    return [("breaches", 1)]


# -- reading the figures -----------------------------------------------------------------------


def coverage_pct(stocks: dict[str, int]) -> float | None:
    """Screened households as a percentage of households (None when there are none)."""
    households = stocks.get("households", 0)
    if households <= 0:
        return None
    return round(100.0 * stocks.get("screened_households", 0) / households, 2)
