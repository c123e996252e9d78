"""What checkpoint knows from screening, asked at a moment: risk areas and watch periods.

A crossing's origin is placed in an administrative division by its `origin_region_code`,
else by its `origin` name (湖北省武汉市江汉区, 武汉: the rules of `shared.divisions`, the same
matcher screening's inquiries use), and matched against risk areas by code prefix.

Both views keep time: a risk area has its days of validity and the day it was lifted; a watch
period (home observation or quarantine) has its start and, once released or transferred to a
hospital, its end. So a crossing uploaded late is judged by the risk areas and watch states
*of its own time*, as far as the views have received screening's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared import divisions
from shared.divisions import Place


@dataclass(frozen=True)
class RiskArea:
    """中高风险地区: matched by administrative division code prefix (4201 covers 420102).
    Only high and medium areas turn arrivals back or refer them; a low one is listed only."""

    id: str
    name: str
    level: str
    region_codes: tuple[str, ...]
    valid_from: date
    valid_to: date | None
    lifted_on: date | None

    def active_on(self, day: date) -> bool:
        """From `valid_from` to `valid_to` inclusive; no longer on the day it was lifted."""
        if self.level == "low" or day < self.valid_from:
            return False
        if self.valid_to is not None and day > self.valid_to:
            return False
        return self.lifted_on is None or day < self.lifted_on

    def covers(self, place: Place) -> bool:
        """By division code prefix (`shared.divisions`): 4201 covers 武汉's 江汉区 420103."""
        return place.code is not None and divisions.covers(self.region_codes, place.code)


def from_risk_area(areas: Iterable[RiskArea], origin: Place | None, day: date) -> bool:
    """Whether the origin lies in a risk area active on the crossing's day."""
    return origin is not None and any(a.active_on(day) and a.covers(origin) for a in areas)


def origin_unresolved(areas: Iterable[RiskArea], origin: Place | None, day: date) -> bool:
    """An origin was given but names no one division (鼓楼区 is in four cities; a typo) on a
    day some risk area is active: it may lie in one, so it is not taken as clear."""
    return origin is not None and not origin.resolved and any(a.active_on(day) for a in areas)


@dataclass(frozen=True)
class WatchPeriod:
    """A subject under home observation or quarantine from `starts_at` until `ended_at`."""

    subject_id: str
    kind: str  # observation | quarantine
    starts_at: datetime
    ended_at: datetime | None

    def holds_at(self, moment: datetime) -> bool:
        return self.starts_at <= moment and (self.ended_at is None or moment < self.ended_at)


@dataclass(frozen=True)
class WatchState:
    quarantined: bool
    observed: bool


def watch_state(
    periods: Iterable[WatchPeriod], subject_ids: Iterable[str], moment: datetime
) -> WatchState:
    """Whether any of a person's subject ids (registry id, `h:<id_hmac>`) is watched then."""
    ids = set(subject_ids)
    held = {p.kind for p in periods if p.subject_id in ids and p.holds_at(moment)}
    return WatchState("quarantine" in held, "observation" in held)


def views_as_of(occurred_at: datetime, now: datetime, live_window: timedelta) -> datetime | None:
    """Residency and vehicles are known only as they are now: a crossing older than the live
    window is judged by them as of `now`, and says so. None for a live crossing."""
    return now if occurred_at < now - live_window else None
