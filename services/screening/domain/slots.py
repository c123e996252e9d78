"""Daily slots (每日两次体温, 每日三次消毒): pure arithmetic in the system time zone.

A slot is a window of local wall-clock time, `"08:00-10:00"`, repeated every day; `24:00` may
end a window at midnight. The day a slot belongs to is the local date of its opening (a fact
belongs to the day of its `occurred_at` in the system zone, DESIGN §3).

Rules decided here and used by every caller:

* **Attribution** (`slot_of`): a time counts for the slot whose window contains it; a time
  outside every window counts for the most recent slot that opened earlier the same local
  day (a reading at 19:30 is the 16:00-18:00 reading, taken late in the day). A time before
  the first window of its day opens belongs to no slot and is refused (`None`): it cannot be
  yesterday's reading, because a fact belongs to the day it happened.
* **Closing** (`closed_between`): a slot is settled once its window has ended; the scheduler
  asks which slots ended in a half-open interval `(after, until]`, so consecutive scans
  never see a slot twice and never skip one.
* **Settling in passes** (`settle_count`): a long backlog of closed windows is settled a
  bounded number at a time, oldest first, never splitting the windows that close together.
* **Due** (`due_in`): a slot is due from someone only if the whole window lies inside one
  period of their watch: a watch that starts at 09:00 is first due at 16:00, and one
  released at 17:00 owes nothing for 16:00-18:00.

Local times are turned into instants with `zoneinfo` (fold 0), so zones with daylight saving
time work too: a window that falls in a skipped hour is shifted as `zoneinfo` shifts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_SLOT = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MINUTES_PER_DAY = 24 * 60
WHOLE_DAY = "00:00-24:00"


@dataclass(frozen=True, order=True)
class Slot:
    """A daily window, `start` and `end` in minutes after local midnight (end may be 1440)."""

    start: int
    end: int

    @property
    def label(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, order=True)
class SlotRef:
    """One slot on one local day."""

    day: date
    slot: Slot

    @property
    def label(self) -> str:
        return self.slot.label

    def opens_at(self, zone: tzinfo) -> datetime:
        return _local(self.day, self.slot.start, zone)

    def closes_at(self, zone: tzinfo) -> datetime:
        return _local(self.day, self.slot.end, zone)


@dataclass(frozen=True)
class Period:
    """A stretch of time, open-ended while `end` is None."""

    start: datetime
    end: datetime | None = None

    def contains(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at <= self.end)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local(day: date, minutes: int, zone: tzinfo) -> datetime:
    """The instant of local wall-clock `minutes` after midnight of `day` (1440 = next day)."""
    if minutes >= MINUTES_PER_DAY:
        day, minutes = day + timedelta(days=1), minutes - MINUTES_PER_DAY
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    # normalise through UTC so that a wall time in a skipped hour becomes a real instant
    return wall.astimezone(UTC).astimezone(zone)


def parse_slot(text: str) -> Slot:
    """`"08:00-10:00"` → Slot; ValueError for anything else (end after start, 24:00 at most)."""
    m = _SLOT.match(text.strip())
    if not m:
        raise ValueError(f"a slot is HH:MM-HH:MM, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} is not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"slot {text!r} must end after it starts (windows do not cross midnight)")
    return Slot(start, end)


def parse_slots(texts: Iterable[str]) -> tuple[Slot, ...]:
    """A day's windows, sorted; they must not overlap (touching is fine)."""
    slots = sorted(parse_slot(t) for t in texts)
    for before, after in zip(slots, slots[1:], strict=False):
        if after.start < before.end:
            raise ValueError(f"slots {before.label} and {after.label} overlap")
    return tuple(slots)


def local_day(at: datetime, zone: tzinfo) -> date:
    return at.astimezone(zone).date()


def _minutes(at: datetime, zone: tzinfo) -> tuple[date, int]:
    local = at.astimezone(zone)
    return local.date(), local.hour * 60 + local.minute


def slot_of(at: datetime, slots: Sequence[Slot], zone: tzinfo) -> SlotRef | None:
    """The slot a time counts for (see the module's rules), or None before the day's first."""
    day, minute = _minutes(at, zone)
    latest: Slot | None = None
    for slot in sorted(slots):
        if slot.start <= minute < slot.end:
            return SlotRef(day, slot)
        if slot.start <= minute:
            latest = slot
    return SlotRef(day, latest) if latest is not None else None


def closed_between(
    after: datetime, until: datetime, slots: Sequence[Slot], zone: tzinfo
) -> list[SlotRef]:
    """Slots whose window ended in `(after, until]`, oldest first."""
    if until <= after or not slots:
        return []
    # a window ends at most one day after its opening day (24:00)
    day = local_day(after, zone) - timedelta(days=1)
    last = local_day(until, zone)
    found: list[SlotRef] = []
    while day <= last:
        for slot in sorted(slots):
            ref = SlotRef(day, slot)
            if after < ref.closes_at(zone) <= until:
                found.append(ref)
        day += timedelta(days=1)
    return sorted(found, key=lambda r: (r.closes_at(zone), r.slot))


def next_close_after(at: datetime, slots: Sequence[Slot], zone: tzinfo) -> datetime | None:
    """When the next window ends strictly after `at` (None without slots)."""
    if not slots:
        return None
    day = local_day(at, zone) - timedelta(days=1)
    for offset in range(4):
        closes = sorted(SlotRef(day + timedelta(days=offset), s).closes_at(zone) for s in slots)
        for c in closes:
            if c > at:
                return c
    return None  # unreachable for well-formed slots


def settle_count(closes: Sequence[datetime], limit: int) -> int:
    """How many of the windows closing at `closes` (oldest first) one pass settles: at most
    `limit`, but all or none of those closing at one instant, since the scheduler's mark then
    moves to that instant and a window left behind there would never be looked at again; when
    the first instant alone holds more than `limit`, all of its windows."""
    if len(closes) <= limit:
        return len(closes)
    taken = max(limit, 0)
    while taken > 0 and closes[taken] == closes[taken - 1]:
        taken -= 1
    if taken == 0:
        taken = 1
        while taken < len(closes) and closes[taken] == closes[0]:
            taken += 1
    return taken


def due_in(periods: Iterable[Period], ref: SlotRef, zone: tzinfo) -> bool:
    """Is the whole window of `ref` inside one of `periods`?"""
    opens, closes = ref.opens_at(zone), ref.closes_at(zone)
    return any(p.start <= opens and (p.end is None or closes <= p.end) for p in periods)


def merge(periods: Iterable[Period]) -> list[Period]:
    """Touching or overlapping periods as one (an observation followed by a quarantine)."""
    merged: list[Period] = []
    for p in sorted(periods, key=lambda p: p.start):
        if merged:
            last = merged[-1]
            if last.end is None or p.start <= last.end:
                end = None if last.end is None or p.end is None else max(last.end, p.end)
                merged[-1] = Period(last.start, end)
                continue
        merged.append(p)
    return merged


def split_day(span: Slot, times: int) -> tuple[Slot, ...]:
    """`times` equal windows covering `span` (e.g. 07:00-21:00 three times a day)."""
    if times <= 0:
        return ()
    length = span.end - span.start
    if times > length:
        raise ValueError(f"cannot fit {times} windows into {span.label}")
    edges = [span.start + (length * i) // times for i in range(times + 1)]
    return tuple(Slot(a, b) for a, b in zip(edges, edges[1:], strict=False))
