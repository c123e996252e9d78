"""Supervision of a process's background tasks: none ends except on shutdown (DESIGN §9).

Every loop that talks to PostgreSQL or Kafka (the relay, each consumer, the scheduler, the
lag refresher) runs as a `Supervised` task. Whatever it raises, and even if it returns, it is
started again after a capped exponential backoff with full jitter; the step grows with each
failure that follows and falls back to the first once the task has succeeded since. Each task
calls `beat()` whenever it completed a unit of work (a poll, a batch, a lease check, a scan):
`/healthz` fails once a task has gone longer than `stale_after` without one, so an
orchestrator restarts a process whose task cannot recover by itself.

Failures are logged once per backoff step with the count of failures since the last success,
not once per attempt: a broker outage of minutes writes a handful of lines, not thousands.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

Beat = Callable[[], None]
TaskBody = Callable[[asyncio.Event, Beat], Awaitable[None]]

TASK_UP = Gauge("grid_task_up", "1 while a background task runs, 0 while it waits to restart",
                ["task"])  # fmt: skip
TASK_RESTARTS = Counter("grid_task_restarts_total", "Restarts of a background task", ["task"])
TASK_LAST_SUCCESS = Gauge(
    "grid_task_last_success_timestamp_seconds", "When a background task last did work", ["task"]
)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: step n waits U(0, min(cap, first·2ⁿ))
    but at least a tenth of it, so a crowd of restarting replicas spreads out."""

    first: float = 0.25
    cap: float = 5.0

    def delay(self, step: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap, self.first * 2.0 ** min(step, 30))
        return ceiling * (0.1 + 0.9 * rand())


@dataclass
class TaskHealth:
    """What `/healthz` and the metrics say about one task."""

    name: str
    up: bool = False
    restarts: int = 0
    failures_since_success: int = 0
    last_success: float = field(default_factory=time.time)  # start counts as a success
    last_error: str | None = None

    def stale(self, now: float, stale_after: float) -> bool:
        return now - self.last_success > stale_after


class Supervised:
    """One background task kept running until `stop()`."""

    def __init__(
        self,
        name: str,
        body: TaskBody,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.body = body
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.health = TaskHealth(name, last_success=clock())
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def beat(self) -> None:
        now = self.clock()
        self.health.last_success = now
        self.health.failures_since_success = 0
        TASK_LAST_SUCCESS.labels(self.name).set(now)

    async def _run(self) -> None:
        step = 0
        while not self._stop.is_set():
            began = self.health.last_success
            self.health.up = True
            TASK_UP.labels(self.name).set(1)
            try:
                await self.body(self._stop, self.beat)
                if self._stop.is_set():
                    break
                error = "ended without being stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever it was, run it again
                if self._stop.is_set():
                    break
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self.health.up = False
                TASK_UP.labels(self.name).set(0)
            if self.health.last_success > began:
                step = 0  # it worked for a while: start over from the shortest wait
            self.health.failures_since_success += 1
            self.health.restarts += 1
            self.health.last_error = error[:500]
            TASK_RESTARTS.labels(self.name).inc()
            delay = self.backoff.delay(step)
            log.warning(
                "task %s failed (%d since its last success), restarting in %.1fs: %s",
                self.name,
                self.health.failures_since_success,
                delay,
                self.health.last_error,
            )
            step += 1
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass

    async def stop(self, timeout: float = 15.0) -> None:
        """Ask the task to end and wait for it; never raises (shutdown must succeed)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r at shutdown", self.name, task.exception())


class Supervisor:
    """The process's supervised tasks, and the health they add up to."""

    def __init__(self, *, backoff: Backoff | None = None, stale_after: float = 120.0) -> None:
        self.backoff = backoff or Backoff()
        self.stale_after = stale_after
        self.tasks: dict[str, Supervised] = {}

    def spawn(self, name: str, body: TaskBody) -> Supervised:
        if name in self.tasks:
            raise ValueError(f"task {name} already runs")
        task = Supervised(name, body, backoff=self.backoff)
        self.tasks[name] = task
        task.start()
        return task

    async def stop(self, name: str) -> None:
        task = self.tasks.pop(name, None)
        if task is not None:
            await task.stop()

    def healthy(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return not any(t.health.stale(now, self.stale_after) for t in self.tasks.values())

    def report(self, now: float | None = None) -> dict[str, dict[str, object]]:
        now = time.time() if now is None else now
        return {
            name: {
                "up": t.health.up,
                "restarts": t.health.restarts,
                "seconds_since_success": round(now - t.health.last_success, 3),
                "stale": t.health.stale(now, self.stale_after),
                "last_error": t.health.last_error,
            }
            for name, t in sorted(self.tasks.items())
        }
