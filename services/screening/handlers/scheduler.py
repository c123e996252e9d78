"""The missed-slot scheduler: the service itself notices a follow-up or a care task that was
not done in its window (DESIGN §4).

Every `SCREENING_SCHEDULER_INTERVAL` seconds, `scan(pool, settings, now)`:

1. picks the streams whose `scheduler_marks.next_check` has come (a window of theirs
   ended), page by page in stream order, each at most once per scan;
2. folds the stream and lists the windows that ended in `(scanned_to, now]`, were due
   (wholly inside the watch, or inside a place plan) and have neither a record nor a miss;
3. appends each miss in its own short transaction, decided again on the stream as it is
   then (a reading that came in meanwhile wins), under the command id
   `missed:<subject>:<day>:<slot>` / `caremissed:<target>:<task>:<day>:<slot>`: the event
   store refuses a second append of the same id, so a second scan, a crashed scan run
   again, or two replicas scanning at once write each miss exactly once;
4. moves the low-water mark `scanned_to` to `now` and sets the next check to the next window
   end (none once the watch or plan is over and settled).

The mark only bounds work, it is not what makes a miss unique; a scheduler that was down
resumes from the marks and catches up on every window that ended meanwhile. A command that
moves a start back (a back-dated observation) lowers the mark and bumps its `epoch`, so a
scan that read the old mark never overwrites the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from services.screening.config import ScreeningSettings
from services.screening.domain import care as care_domain
from services.screening.domain import slots as slot_math
from services.screening.domain import watch as watch_domain
from services.screening.domain.care import CarePlans, PlaceCare
from services.screening.domain.slots import Slot, SlotRef
from services.screening.domain.watch import Watch
from services.screening.handlers.care import PLACE
from services.screening.handlers.watch import RETRIES, WATCH, project_watch
from services.screening.views import person_node
from shared.commands import Aggregate, execute
from shared.contracts import EventPayload
from shared.envelope import utc_now
from shared.eventstore import CommandContext, ConcurrencyError, load_stream
from shared.http import Part, background
from shared.supervisor import Beat

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
PAGE = 200
ACTOR = "screening-scheduler"

MISSES = Counter("screening_slots_missed_total", "Slots the scheduler found missed", ["kind"])
SCAN_SECONDS = Gauge("screening_scheduler_scan_seconds", "Duration of the last scan")
SCAN_STREAMS = Gauge("screening_scheduler_scan_streams", "Streams looked at by the last scan")


async def scan(pool: Any, settings: ScreeningSettings, now: datetime) -> int:
    """Emit every miss due by `now`; returns how many were written."""
    until = now - timedelta(seconds=settings.scheduler_grace_seconds)
    slots, plans = settings.follow_up_slots, settings.parsed_care_plans
    started = asyncio.get_running_loop().time()
    emitted = looked_at = 0
    after = ""
    while True:
        rows = await pool.fetch(
            "SELECT stream_id, scanned_to, epoch FROM scheduler_marks"
            " WHERE next_check <= $1 AND stream_id > $2 ORDER BY stream_id LIMIT $3",
            until,
            after,
            PAGE,
        )
        for r in rows:
            emitted += await _settle(
                pool, settings, slots, plans, r["stream_id"], r["scanned_to"], r["epoch"], until
            )
        looked_at += len(rows)
        if len(rows) < PAGE:
            break
        after = rows[-1]["stream_id"]
    SCAN_SECONDS.set(asyncio.get_running_loop().time() - started)
    SCAN_STREAMS.set(looked_at)
    return emitted


async def _settle(
    pool: Any,
    settings: ScreeningSettings,
    slots: Sequence[Slot],
    plans: CarePlans,
    stream_id: str,
    scanned_to: datetime,
    epoch: int,
    until: datetime,
) -> int:
    zone = settings.zone
    async with pool.acquire() as conn:
        history = await load_stream(conn, stream_id)
    target = stream_id.split(":", 1)[1]
    misses: list[_Miss] = []
    aggregate: Aggregate[Any]
    if stream_id.startswith(f"{watch_domain.STREAM}:"):
        aggregate, state = WATCH, WATCH.fold(history)
        node = await _node(pool, target, state)
        for ref in watch_domain.follow_ups_due(state, slots, zone, scanned_to, until):
            misses.append(
                _Miss(
                    f"missed:{target}:{ref.day.isoformat()}:{ref.label}",
                    partial(watch_domain.decide_follow_up_missed, ref=ref, zone=zone, until=until),
                    ref,
                    "follow_up",
                )
            )
        for task, ref in care_domain.subject_care_due(state, plans, zone, scanned_to, until):
            misses.append(
                _Miss(
                    f"caremissed:{target}:{task}:{ref.day.isoformat()}:{ref.label}",
                    partial(
                        care_domain.decide_subject_care_missed,
                        task=task,
                        ref=ref,
                        plans=plans,
                        zone=zone,
                        until=until,
                    ),
                    ref,
                    "care",
                )
            )
        next_check = _next_watch_check(state, until, _all_windows(slots, plans), settings)
    else:
        aggregate, place = PLACE, PLACE.fold(history)
        node = target
        for task, ref in care_domain.place_care_due(place, zone, scanned_to, until):
            misses.append(
                _Miss(
                    f"caremissed:{target}:{task}:{ref.day.isoformat()}:{ref.label}",
                    partial(
                        care_domain.decide_place_missed, task=task, ref=ref, zone=zone, until=until
                    ),
                    ref,
                    "place",
                )
            )
        next_check = _next_place_check(place, until, settings)
    emitted, settled = 0, True
    for miss in sorted(misses, key=lambda m: m.ref.closes_at(zone)):
        written = await _emit(pool, aggregate, stream_id, miss, node, settings)
        if written is None:
            settled = False  # keep the mark: the next scan tries again
        else:
            emitted += written
    if settled:
        await pool.execute(
            "UPDATE scheduler_marks SET scanned_to = $2, next_check = $3"
            " WHERE stream_id = $1 AND epoch = $4 AND scanned_to <= $2",
            stream_id,
            until,
            next_check,
            epoch,
        )
    return emitted


@dataclass(frozen=True)
class _Miss:
    command_id: str
    decide: Callable[[Any], list[EventPayload]]
    ref: SlotRef
    kind: str


async def _node(pool: Any, subject: str, state: Watch) -> str | None:
    if subject.startswith("h:"):
        return state.node_id
    async with pool.acquire() as conn:
        return await person_node(conn, subject) or state.node_id


async def _emit(
    pool: Any,
    aggregate: Aggregate[Any],
    stream_id: str,
    miss: _Miss,
    node_id: str | None,
    settings: ScreeningSettings,
) -> int | None:
    """Append one miss in its own transaction; None if the stream kept moving."""
    ctx = CommandContext(actor=ACTOR, command_id=miss.command_id)
    for _ in range(RETRIES):
        try:
            outcome = await execute(
                pool,
                aggregate,
                stream_id,
                decide=miss.decide,
                ctx=ctx,
                occurred_at=miss.ref.closes_at(settings.zone),
                node_id=node_id,
                project=project_watch,
            )
        except ConcurrencyError:
            continue
        if outcome.events and not outcome.replayed:
            MISSES.labels(miss.kind).inc(len(outcome.events))
            return len(outcome.events)
        return 0
    log.warning("scheduler: %s kept moving; trying again at the next scan", stream_id)
    return None


def _all_windows(slots: Sequence[Slot], plans: CarePlans) -> tuple[Slot, ...]:
    windows = set(slots)
    for plan in plans.values():
        for task_windows in plan.values():
            windows.update(task_windows)
    return tuple(sorted(windows))


def _next_watch_check(
    state: Watch, until: datetime, windows: Sequence[Slot], settings: ScreeningSettings
) -> datetime | None:
    ended = state.ended_at
    if state.open_segment is None and (ended is None or ended <= until):
        return None  # nothing can fall due any more (a new start moves the mark again)
    return slot_math.next_close_after(until, windows, settings.zone)


def _next_place_check(
    place: PlaceCare, until: datetime, settings: ScreeningSettings
) -> datetime | None:
    live = [p for p in place.plans if p.until is None or p.until > until]
    windows = tuple(sorted({s for p in live for s in p.slots}))
    return slot_math.next_close_after(until, windows, settings.zone) if windows else None


class Scheduler:
    """Scans on an interval with an injectable clock (tests pass a fake one)."""

    def __init__(self, pool: Any, settings: ScreeningSettings, clock: Clock = utc_now) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock

    async def tick(self) -> int:
        return await scan(self.pool, self.settings, self.clock())

    async def run(self, stop: asyncio.Event, beat: Beat | None = None) -> None:
        """Scan every interval until `stop`; a failed scan ends the run (the supervisor
        starts it again after a backoff, and the marks say where to resume)."""
        while not stop.is_set():
            await self.tick()
            if beat is not None:
                beat()
            try:
                await asyncio.wait_for(stop.wait(), self.settings.scheduler_interval)
            except TimeoutError:
                pass


def scheduler_part(clock: Clock | None = None) -> Part:
    """The lifespan part running the scheduler (when `run_scheduler`); `app.state.clock`
    overrides the clock."""

    async def run(app: FastAPI, stop: asyncio.Event, beat: Beat) -> None:
        use = clock or getattr(app.state, "clock", None) or utc_now
        await Scheduler(app.state.pool, app.state.settings, use).run(stop, beat)

    supervised = background("screening-scheduler", run)

    @asynccontextmanager
    async def part(app: FastAPI) -> AsyncIterator[None]:
        settings = app.state.settings
        if not isinstance(settings, ScreeningSettings) or not settings.run_scheduler:
            yield
            return
        async with supervised(app):
            yield

    return part
