"""The faults. Each one is injected while the load generator writes, and then left alone:
only the orchestrator acts afterwards (it starts an exited process again, as a container
platform would), never the test."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.chaos.harness import PUBLISHERS, Replica, log

if TYPE_CHECKING:
    from tests.chaos.runner import Chaos


@dataclass
class Timeline:
    injected: float = 0.0  # time.monotonic() the fault began
    healed: float = 0.0  # the outside world is whole again (server started, SIGCONT, ...)
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Fault:
    name = "fault"
    slug = "fault"  # the test id
    quick = False

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class KillReplica(Fault):
    """kill -9 of one replica of a service (the active relay's holder for a publisher); the
    orchestrator starts it again after its restart delay."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = f"kill -9 {service}"
        self.slug = f"kill-{service}"

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        target: Replica | None = None
        if self.service in PUBLISHERS:
            holders = await chaos.observer.relay_holders()
            target, how = holders[self.service]
            t.notes["relay holder"] = how
        if target is None:
            target = chaos.rng.choice(chaos.cluster.replicas[self.service])
        t.notes["killed"] = f"{target.name} (pid {target.pid})"
        starts = target.starts
        t.injected = time.monotonic()
        target.kill()
        log(f"killed {target.name} with SIGKILL")
        await chaos.cluster.restarted(target, starts)  # the orchestrator's job
        t.healed = time.monotonic()


class KafkaKill(Fault):
    name = "kill -9 Kafka, restart"
    slug = "kafka-kill"

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        t.injected = time.monotonic()
        chaos.infra.kafka_kill()
        log("killed the Kafka broker with SIGKILL")
        await asyncio.sleep(chaos.config.outage_seconds)
        await asyncio.to_thread(chaos.infra.kafka_start)
        t.healed = time.monotonic()
        log("Kafka broker started again")


class PgFastRestart(Fault):
    name = "pg_ctl restart -m fast"
    slug = "pg-fast-restart"
    quick = True

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        t.injected = time.monotonic()
        await asyncio.to_thread(chaos.infra.pg_restart_fast)
        t.healed = time.monotonic()
        log(f"PostgreSQL restarted (fast) in {t.healed - t.injected:.1f}s")


class PgImmediateStop(Fault):
    name = "pg_ctl stop -m immediate, start"
    slug = "pg-immediate-stop"

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        t.injected = time.monotonic()
        await asyncio.to_thread(chaos.infra.pg_stop_immediate)
        log("PostgreSQL stopped (immediate)")
        await asyncio.sleep(chaos.config.outage_seconds)
        await asyncio.to_thread(chaos.infra.pg_start)
        t.healed = time.monotonic()
        log("PostgreSQL started again")


class RelayFreeze(Fault):
    """SIGSTOP of the process holding each publishing store's relay for longer than the lease,
    then SIGCONT. A standby must take over while the holder is frozen, and the woken holder
    must publish nothing (it is fenced)."""

    name = "SIGSTOP relay holders > lease"
    slug = "relay-freeze"
    quick = True

    async def run(self, chaos: Chaos, t: Timeline) -> None:
        holders = await chaos.observer.relay_holders()
        frozen: dict[str, Replica] = {}
        for service, (replica, how) in holders.items():
            t.notes[f"{service} relay"] = how
            if replica is None:
                t.problems.append(f"found no process holding {service}'s relay ({how})")
            else:
                frozen[replica.name] = replica
        since = await chaos.observer.db_now()
        t.injected = time.monotonic()
        for r in frozen.values():
            r.stopped_by_fault = True
            r.signal(signal.SIGSTOP)
        t.notes["frozen"] = sorted(frozen)
        log(f"SIGSTOP {sorted(frozen)} for {chaos.config.freeze_seconds:.0f}s")
        waiting = [s for s, (r, _) in holders.items() if r is not None]
        takeover: dict[str, float | None] = dict.fromkeys(waiting, None)
        end = t.injected + chaos.config.freeze_seconds
        try:
            while time.monotonic() < end:
                await asyncio.sleep(0.5)
                pending = [s for s in waiting if takeover[s] is None]
                if not pending:
                    continue
                published = await chaos.observer.published_since(pending, since)
                for s, yes in published.items():
                    if yes:
                        takeover[s] = round(time.monotonic() - t.injected, 1)
        finally:
            for r in frozen.values():
                r.signal(signal.SIGCONT)
                r.stopped_by_fault = False
            t.healed = time.monotonic()
            log(f"SIGCONT {sorted(frozen)}")
        t.notes["takeover_seconds"] = takeover
        for s, seconds in takeover.items():
            if seconds is None:
                t.problems.append(
                    f"{s}: nothing written during the {chaos.config.freeze_seconds:.0f}s freeze "
                    f"of its relay's holder reached Kafka before SIGCONT (no standby took over;"
                    f" lease {chaos.config.lease_seconds:.0f}s)"
                )


QUICK = [PgFastRestart(), RelayFreeze()]
FULL = [
    *QUICK,
    KillReplica("registry"),
    KillReplica("screening"),
    KillReplica("checkpoint"),
    KillReplica("reporting"),
    KafkaKill(),
    PgImmediateStop(),
]
