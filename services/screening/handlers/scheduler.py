"""The missed-slot scheduler: the service itself notices a follow-up or a care task that was
not done in its window (DESIGN §4).

Every `SCREENING_SCHEDULER_INTERVAL` seconds, `scan(pool, settings, now)` runs passes. A pass:

1. takes the streams whose `scheduler_marks.next_check` has come (a window of theirs ended),
   oldest due first, each once;
2. folds the stream once and decides, on that fold, the misses of every window that ended in
   `(scanned_to, now]`, was due (wholly inside the watch, or inside a place plan) and has
   neither a record nor a miss;
3. appends the oldest of them, at most `SCREENING_SCHEDULER_MISSES_PER_WATCH`, in one
   transaction with the stream's projection and its mark: the append is at the next version,
   so a reading that came in meanwhile wins (the stream is folded on from there and decided
   again), and a second scan, a crashed scan run again, or two replicas scanning at once write
   each miss exactly once;
4. moves the low-water mark `scanned_to` to `now` — or, for a stream still behind, to the close
   of the last window it settled — and sets the next check to the next window end (none once
   the watch or plan is over and settled).

Passes repeat while a stream is behind, folding on from where the last pass left it (each
event is read once per scan), so a watch back-dated to the fact horizon costs a few
statements per pass and its backlog is settled a bounded number at a time: one watch far
behind cannot delay another watch's misses, which are written in the first pass.

A miss is caused by the event that opened its window's watch segment or place plan: its
`causation_id` is that event's id and its `correlation_id` that event's, so a missed
follow-up traces back to the request that ordered the quarantine.

The mark only bounds work, it is not what makes a miss unique; a scheduler that was down
resumes from the marks and catches up on every window that ended meanwhile. A command that
moves a start back (a back-dated observation) lowers the mark and bumps its `epoch`, so a
scan that read the old mark never overwrites the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from services.screening.config import ScreeningSettings
from services.screening.domain import care as care_domain
from services.screening.domain import slots as slot_math
from services.screening.domain import watch as watch_domain
from services.screening.domain.care import CarePlans, PlaceCare
from services.screening.domain.slots import Slot
from services.screening.domain.watch import Miss, Watch
from services.screening.handlers.care import PLACE
from services.screening.handlers.watch import RETRIES, WATCH, project_watch
from services.screening.views import person_node
from shared.commands import Aggregate
from shared.envelope import Envelope, utc_now
from shared.eventstore import (
    CommandContext,
    ConcurrencyError,
    DuplicateCommand,
    PendingEvent,
    append,
    load_stream,
)
from shared.http import Part, background
from shared.supervisor import Beat

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
PAGE = 200
ACTOR = "screening-scheduler"

MISSES = Counter("screening_slots_missed_total", "Slots the scheduler found missed", ["kind"])
SCAN_SECONDS = Gauge("screening_scheduler_scan_seconds", "Duration of the last scan")
SCAN_STREAMS = Gauge("screening_scheduler_scan_streams", "Streams looked at by the last scan")
SCAN_PASSES = Gauge("screening_scheduler_scan_passes", "Passes the last scan needed")

DUE = (
    "SELECT stream_id, scanned_to, next_check, epoch FROM scheduler_marks"
    " WHERE next_check <= $1 AND ($2::timestamptz IS NULL OR (next_check, stream_id) > ($2, $3))"
    " ORDER BY next_check, stream_id LIMIT $4"
)
MOVE_MARK = (
    "UPDATE scheduler_marks SET scanned_to = $2, next_check = $3"
    " WHERE stream_id = $1 AND epoch = $4 AND scanned_to <= $2"
)


@dataclass(frozen=True)
class _Fold:
    """A stream folded up to `version`, kept between passes while it is behind."""

    aggregate: Aggregate[Any]
    state: Any
    version: int
    # (event_id, correlation_id) by version: what a miss names as its cause and origin
    origins: Mapping[int, tuple[UUID, UUID | None]] = field(default_factory=dict)

    def on(self, events: Sequence[Envelope]) -> _Fold:
        if not events:
            return self
        origins = {**self.origins, **{e.version: (e.event_id, e.correlation_id) for e in events}}
        return _Fold(
            self.aggregate, self.aggregate.fold(events, self.state), events[-1].version, origins
        )

    def caused(self, miss: Miss, pending: PendingEvent) -> PendingEvent:
        """The miss's event caused by the event that opened its window, with its origin."""
        if miss.opened_by not in self.origins:
            return pending
        cause, origin = self.origins[miss.opened_by]
        return replace(pending, causation_id=cause, correlation_id=origin)


async def scan(pool: Any, settings: ScreeningSettings, now: datetime) -> int:
    """Emit every miss due by `now`; returns how many were written."""
    until = now - timedelta(seconds=settings.scheduler_grace_seconds)
    started = asyncio.get_running_loop().time()
    behind: dict[str, _Fold] = {}
    emitted = looked_at = passes = 0
    while passes == 0 or behind:
        passes += 1
        written, streams, behind = await _pass(pool, settings, until, behind)
        emitted += written
        looked_at += streams
    SCAN_SECONDS.set(asyncio.get_running_loop().time() - started)
    SCAN_STREAMS.set(looked_at)
    SCAN_PASSES.set(passes)
    return emitted


async def _pass(
    pool: Any, settings: ScreeningSettings, until: datetime, folds: dict[str, _Fold]
) -> tuple[int, int, dict[str, _Fold]]:
    """Every due stream once, oldest due first, folded on from `folds`; returns what it
    wrote, how many streams it took, and the folds of those still behind (only those)."""
    emitted = 0
    behind: dict[str, _Fold] = {}
    seen: set[str] = set()
    after: tuple[datetime | None, str] = (None, "")
    while True:
        rows = await pool.fetch(DUE, until, *after, PAGE)
        for r in rows:
            if r["stream_id"] in seen:
                continue  # moved on in this pass and due again: it waits for the next one
            seen.add(r["stream_id"])
            emitted += await _settle(pool, settings, r, until, folds, behind)
        if len(rows) < PAGE:
            return emitted, len(seen), behind
        after = (rows[-1]["next_check"], rows[-1]["stream_id"])


async def _settle(
    pool: Any,
    settings: ScreeningSettings,
    mark: Any,
    until: datetime,
    folds: dict[str, _Fold],
    behind: dict[str, _Fold],
) -> int:
    stream_id: str = mark["stream_id"]
    fold = folds.get(stream_id) or _empty_fold(stream_id)
    limit = settings.scheduler_misses_per_watch
    async with pool.acquire() as conn:
        for _ in range(RETRIES):
            fold = fold.on(await load_stream(conn, stream_id, fold.version))
            owed = _misses(fold, settings, mark["scanned_to"], until)
            misses = watch_domain.first_misses(owed, limit)
            still_behind = len(misses) < len(owed)
            settled_to = misses[-1].closed_at if still_behind else until
            next_check = (
                slot_math.next_close_after(
                    settled_to, _windows(fold.state, settings), settings.zone
                )
                if still_behind
                else _next_check(fold.state, until, settings)
            )
            move = (stream_id, settled_to, next_check, mark["epoch"])
            if not misses:
                await conn.execute(MOVE_MARK, *move)
                return 0
            node = await _node(conn, stream_id, fold.state)
            pending = [
                fold.caused(
                    m,
                    PendingEvent(
                        stream_id,
                        fold.aggregate.stream_type,
                        fold.version + i,
                        m.event,
                        m.closed_at,
                        node,
                    ),
                )
                for i, m in enumerate(misses, start=1)
            ]
            ctx = CommandContext.internal(ACTOR, f"missed:{stream_id}@{fold.version}")
            try:
                async with conn.transaction():
                    stored = await append(conn, pending, ctx)
                    await project_watch(conn, stored)
                    await conn.execute(MOVE_MARK, *move)
            except (ConcurrencyError, DuplicateCommand):
                continue  # the stream moved on: fold what came in and decide again
            for m in misses:
                MISSES.labels(_kind(fold, m)).inc()
            if still_behind:
                behind[stream_id] = fold.on(stored)
            return len(stored)
    log.warning("scheduler: %s kept moving; trying again at the next scan", stream_id)
    return 0


def _empty_fold(stream_id: str) -> _Fold:
    if stream_id.startswith(f"{watch_domain.STREAM}:"):
        return _Fold(WATCH, WATCH.initial, 0)
    return _Fold(PLACE, PLACE.initial, 0)


def _misses(
    fold: _Fold, settings: ScreeningSettings, after: datetime, until: datetime
) -> list[Miss]:
    zone = settings.zone
    if isinstance(fold.state, Watch):
        return watch_domain.follow_ups_missed(
            fold.state, settings.follow_up_slots, zone, after, until
        ) + care_domain.subject_care_missed(
            fold.state, settings.parsed_care_plans, zone, after, until
        )
    return care_domain.place_care_missed(fold.state, zone, after, until)


def _kind(fold: _Fold, miss: Miss) -> str:
    if not isinstance(fold.state, Watch):
        return "place"
    return "follow_up" if miss.event.event_type == "FollowUpMissed" else "care"


async def _node(conn: Any, stream_id: str, state: Any) -> str | None:
    target = stream_id.split(":", 1)[1]
    if not isinstance(state, Watch):
        return target
    if target.startswith("h:"):
        return state.node_id
    return await person_node(conn, target) or state.node_id


def _windows(state: Any, settings: ScreeningSettings) -> tuple[Slot, ...]:
    if isinstance(state, Watch):
        return _all_windows(settings.follow_up_slots, settings.parsed_care_plans)
    return tuple(sorted({s for p in state.plans for s in p.slots}))


def _next_check(state: Any, until: datetime, settings: ScreeningSettings) -> datetime | None:
    if isinstance(state, Watch):
        windows = _all_windows(settings.follow_up_slots, settings.parsed_care_plans)
        return _next_watch_check(state, until, windows, settings)
    return _next_place_check(state, until, settings)


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
