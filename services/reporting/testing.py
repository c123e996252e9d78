"""Mass testing (应检尽检, "不漏一户、不漏一人") and vaccination coverage: who counts where.

Pure functions of one person's facts; `projections_testing` recomputes a person whenever a
fact about them (or the tree above their home) changes and writes only the difference, so
the answer never depends on the order events arrive in, and replays change nothing.

**Who is due in a round.** The round covers a place for `starts_on..ends_on` (days in the
system zone); its *end* is the start of the day after `ends_on`. A standing (not voided)
person is due in the round when

* their home at the round's end (while the round runs: their current home) lies under the
  round's place — whoever lived there when it started and stayed, and whoever moved in or
  was registered there while it ran; or
* they gave a sample in the round while living under the place — they were tested here and
  stay counted here even if they move away afterwards.

So a person who moves out before being sampled is due where they went (if a round runs
there), not here; a person who moves in during the round is due here; a move after the
round ended changes nothing. "Under the place" is the tree as it is now: a subtree that is
moved takes its homes (and their figures) along.

A due person counts at their home at the round's end when that lies under the place, else
at their home when first sampled. *sampled*: at least one sample in the round; *resulted*:
at least one negative or positive result (an `invalid` result needs a new sample);
*positive*: at least one positive result.

**Vaccination.** For each day, a standing person counts at the household they lived in that
day (`persons`), and `dose.<n>` counts them from the day dose n was given (or from the day
they moved in, for a dose given before). Doses are given in order, so `dose.n` is "persons
with at least n doses"; dose 3 and later are boosters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

VALID_RESULTS = frozenset({"negative", "positive"})
PERSONS = "persons"
BOOSTER_DOSE = 3


def dose_metric(number: int) -> str:
    return f"dose.{number}"


@dataclass(frozen=True)
class Residence:
    """The person lived in `household_id` from `since` until their next residence."""

    household_id: str
    since: datetime


@dataclass(frozen=True)
class Round:
    round_id: str
    node_id: str
    starts_on: date
    ends_on: date

    def end(self, zone: tzinfo) -> datetime:
        return datetime.combine(self.ends_on + timedelta(days=1), time(0), tzinfo=zone)


@dataclass(frozen=True)
class Sample:
    round_id: str
    collected_at: datetime
    result: str | None


@dataclass(frozen=True)
class Person:
    """What reporting knows of one person: residences in version order, samples, and the
    day each dose was given (number -> day)."""

    person_id: str
    standing: bool
    residences: Sequence[Residence]
    samples: Sequence[Sample] = ()
    doses: dict[int, date] | None = None


@dataclass(frozen=True)
class Due:
    """A person due in a round, counted at `household_id`."""

    round_id: str
    person_id: str
    household_id: str
    sampled: bool
    resulted: bool
    positive: bool

    def figures(self) -> tuple[int, int, int, int]:
        return 1, int(self.sampled), int(self.resulted), int(self.positive)


def home_at(
    residences: Sequence[Residence], moment: datetime, *, before: bool = False
) -> str | None:
    """Where the person lived at `moment` (just before it with `before`); residences in
    version order."""
    home = None
    for r in residences:
        if r.since > moment or (before and r.since == moment):
            break
        home = r.household_id
    return home


def ordered(residences: Iterable[Residence]) -> list[Residence]:
    """Residences in version order with `since` never going back (a back-dated move does
    not reorder history: the latest move is where the person lives)."""
    out: list[Residence] = []
    for r in residences:
        since = max(r.since, out[-1].since) if out else r.since
        out.append(Residence(r.household_id, since))
    return out


def due_in(person: Person, rnd: Round, lines: dict[str, list[str]], zone: tzinfo) -> Due | None:
    """`lines`: node ids from the root down to each known household (the tree as it is)."""
    if not person.standing:
        return None

    def under(household_id: str | None) -> bool:
        return household_id is not None and rnd.node_id in lines.get(household_id, ())

    samples = [s for s in person.samples if s.round_id == rnd.round_id]
    home = home_at(person.residences, rnd.end(zone), before=True)
    if not under(home):
        first = min(samples, key=lambda s: s.collected_at, default=None)
        home = home_at(person.residences, first.collected_at) if first else None
        if first is None or not under(home):
            return None
    assert home is not None
    return Due(
        rnd.round_id,
        person.person_id,
        home,
        sampled=bool(samples),
        resulted=any(s.result in VALID_RESULTS for s in samples),
        positive=any(s.result == "positive" for s in samples),
    )


def vaccination_stock(
    person: Person, known: set[str] | frozenset[str], zone: tzinfo
) -> dict[tuple[str, date, str], int]:
    """(household, day, metric) -> delta of the person's stocks, at known households."""
    if not person.standing:
        return {}
    out: defaultdict[tuple[str, date, str], int] = defaultdict(int)
    residences = person.residences
    for i, r in enumerate(residences):
        if r.household_id not in known:
            continue
        start = r.since.astimezone(zone).date()
        end = residences[i + 1].since.astimezone(zone).date() if i + 1 < len(residences) else None
        if end is not None and end <= start:
            continue
        metrics = [(PERSONS, start)]
        for number, given in sorted((person.doses or {}).items()):
            first = max(start, given)
            if end is None or first < end:
                metrics.append((dose_metric(number), first))
        for metric, first in metrics:
            out[(r.household_id, first, metric)] += 1
            if end is not None:
                out[(r.household_id, end, metric)] -= 1
    return {k: v for k, v in out.items() if v}


def coverage_pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None
