"""The simulated days: local dates and times in the system zone, back-dated so that the
last simulated day is yesterday."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# the follow-up windows (每日两次体温) the screening service uses by default
FOLLOW_UP_SLOTS = (("08:00", "10:00"), ("16:00", "18:00"))
# the five dailies (五个每日) screening plans by default for each kind of watch: task -> windows
HOME_CARE = {
    "call": ("08:00-20:00",),
    "supplies": ("09:00-18:00",),
    "garbage": ("17:00-21:00",),
    "disinfection": ("07:00-09:00", "12:00-14:00", "18:00-20:00"),
}
CARE_PLANS: dict[str, dict[str, tuple[str, ...]]] = {
    "observation": {"call": ("08:00-20:00",)},
    "home": HOME_CARE,
    "home_medical": HOME_CARE,
    "centralized": {"call": ("08:00-20:00",)},
}


@dataclass(frozen=True)
class Calendar:
    anchor: date  # the first simulated day
    days: int
    zone: ZoneInfo

    @property
    def dates(self) -> list[date]:
        return [self.anchor + timedelta(days=i) for i in range(self.days)]

    @property
    def today(self) -> date:
        """The day after the last simulated one: releases, extensions and results happen
        now, on the day the scenario is loaded."""
        return self.anchor + timedelta(days=self.days)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour % 24, minute), self.zone) + timedelta(
            days=hour // 24
        )

    def window(self, day: date, label: str) -> tuple[datetime, datetime]:
        """`"08:00-10:00"` on `day` as (opens, closes)."""
        start, end = label.split("-")
        return (
            self.at(day, int(start[:2]), int(start[3:])),
            self.at(day, int(end[:2]), int(end[3:])),
        )

    def slot_times(self, day: date) -> list[tuple[str, datetime, datetime]]:
        """Each follow-up window of `day` as (label, opens, closes)."""
        labels = [f"{start}-{end}" for start, end in FOLLOW_UP_SLOTS]
        return [(label, *self.window(day, label)) for label in labels]

    def care_windows(self, kind: str, day: date) -> list[tuple[str, str, datetime, datetime]]:
        """Each care window of `day` for a watch of `kind` as (task, label, opens, closes)."""
        return [
            (task, label, *self.window(day, label))
            for task, labels in CARE_PLANS[kind].items()
            for label in labels
        ]


def calendar_ending_yesterday(days: int, zone: ZoneInfo, now: datetime) -> Calendar:
    today = now.astimezone(zone).date()
    return Calendar(today - timedelta(days=days), days, zone)
