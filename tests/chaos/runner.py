"""One chaos session: the private servers and the 2-replica stack, the seeded district, and
`run(fault)` — load, fault, recovery, and the figures of it — written to
`tests/chaos/results/latest.json` after every fault."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.chaos.checks import Figures, Observer
from tests.chaos.faults import Fault, Timeline
from tests.chaos.harness import RESULTS, ROOT, Cluster, Config, PrivateInfra, log, reap_leftovers
from tests.chaos.load import Client, District, LoadGenerator, Stats

ERRORS = re.compile(r'"level":"(ERROR|CRITICAL)"|Traceback|^ERROR')
NOTEWORTHY = re.compile(r"ERROR|CRITICAL|Traceback|WARNING|Exception|exited|fenced|lease", re.I)


@dataclass
class FaultResult:
    fault: str
    generation: int
    recovered: bool
    # injection -> caught up again under load (every write accepted, every event older than
    # CHAOS_STALENESS on Kafka and applied by every consumer)
    recovery_seconds: float | None
    after_heal_seconds: float | None  # server back / process started / SIGCONT -> caught up
    settled_seconds: float | None  # injection -> exactly 0 everywhere, after the load stopped
    outage_seconds: float
    writes_accepted: int
    writes_checked: int
    lost: int
    doubled: int
    republications: int
    missing_from_kafka: int
    two_holders_same_position: int
    zombie_records: int
    dead_letters: int
    figure_mismatches: int  # places whose figures differ from the ledger (cumulative)
    figure_mismatches_this_fault: int  # ... in what the fault's window added
    attempts: int
    retries: dict[str, int]
    never_accepted: int
    orchestrator: list[str]
    notes: dict[str, Any]
    unmet_at_deadline: list[str]
    problems: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)

    def explain(self) -> str:
        lines = [f"{self.fault}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        if self.unmet_at_deadline:
            lines.append("  not recovered at the deadline:")
            lines += [f"    * {u}" for u in self.unmet_at_deadline]
        for name, excerpt in self.logs.items():
            lines.append(f"  --- {name} (noteworthy lines since the fault) ---")
            lines += [f"    {x}" for x in excerpt]
        return "\n".join(lines)


class Chaos:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.infra = PrivateInfra(self.config)
        self.logs = RESULTS / "logs"
        self.cluster = Cluster(self.config, self.logs)
        self.rng = random.Random(self.config.seed)
        self.results: list[FaultResult] = []
        self.tainted = False
        self.seed_mismatches: dict[int, list[str]] = {}
        self.started = time.monotonic()
        self.setup_seconds = 0.0
        self.client: Client | None = None
        self.district: District | None = None
        self._observer: Observer | None = None

    @property
    def observer(self) -> Observer:
        assert self._observer is not None
        return self._observer

    # -- session ---------------------------------------------------------------------------

    async def setup(self) -> None:
        t0 = time.monotonic()
        reap_leftovers()
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        log(
            f"private servers in {self.config.state_dir} (PG {self.config.pg_port}, "
            f"Kafka {self.config.kafka_port}): reset, up"
        )
        self.infra.reset()
        self.infra.up()
        self.cluster.migrate()
        await self.cluster.start()
        log("8 replicas ready")
        await self._seed()
        self.setup_seconds = time.monotonic() - t0
        log(f"set up in {self.setup_seconds:.0f}s")

    async def _seed(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self._observer is not None:
            await self._observer.close()
        self.client = Client(self.config, self.cluster, random.Random(self.rng.random()))
        self.district = District(
            self.config, self.cluster, self.client, self.cluster.generation.number
        )
        self._observer = Observer(self.config, self.cluster, self.client, self.district)
        await self.district.seed()
        since = time.monotonic()
        at, facts, unmet = await self.observer.wait_recovered(
            since, self.config.start_timeout, None
        )
        if at is None:
            raise RuntimeError("the seeded district never caught up:\n" + "\n".join(unmet))
        await self.observer.compare_figures(facts)
        self.seed_mismatches[self.cluster.generation.number] = facts.figures
        log(
            f"district seeded ({self.district.ledger.total()} writes), caught up after "
            f"{at - since:.1f}s; reporting differs from the ledger at {len(facts.figures)} places"
        )

    async def teardown(self) -> None:
        try:
            await self.cluster.close()
            if self.client is not None:
                await self.client.aclose()
            if self._observer is not None:
                await self._observer.close()
        finally:
            self.infra.reset()
            self.write_results()
            log(f"torn down; session {time.monotonic() - self.started:.0f}s")

    async def ensure_clean(self) -> None:
        """Each fault starts on a consistent system: after one that was not recovered, on
        a fresh generation of schemas and topics."""
        self.infra.up()  # no-op when both run
        if not self.tainted:
            return
        log("the last fault left the system inconsistent: new generation")
        await self.cluster.new_generation()
        await self._seed()
        self.tainted = False

    # -- one fault -------------------------------------------------------------------------

    async def run(self, fault: Fault) -> FaultResult:
        await self.ensure_clean()
        assert self.client is not None and self.district is not None
        cfg = self.config
        self.client.stats = Stats()
        before_writes = self.district.ledger.total()
        before_records = len(self.observer.log.records)
        log_marks = {r.name: r.log_size() for r in self.cluster.all()}
        actions_from = len(self.cluster.actions)
        start_got, _ = await self.observer.figures()
        start_want = self.observer.expected()
        load = LoadGenerator(self.district, cfg.rate)
        t = Timeline()
        log(f"--- {fault.name}: load {cfg.rate:.0f} writes/s")
        load.start()
        await asyncio.sleep(cfg.load_before)
        try:
            await fault.run(self, t)
        except Exception as exc:  # noqa: BLE001 - the harness could not inject it
            t.problems.append(f"could not inject the fault: {type(exc).__name__}: {exc}")
            t.injected = t.injected or time.monotonic()
            t.healed = t.healed or time.monotonic()
        # caught up again while the load goes on (within CHAOS_STALENESS), then, with the
        # load stopped, exactly (nothing in flight, backlog 0, lag 0)
        live = asyncio.create_task(
            self.observer.wait_recovered(t.injected, cfg.recovery_deadline, load, live=True)
        )
        await asyncio.sleep(cfg.load_after)
        await load.finish()
        caught_up, _, unmet_live = await live
        at, facts, unmet = await self.observer.wait_recovered(
            t.injected, cfg.recovery_deadline, load
        )
        if caught_up is None:
            unmet = [f"under load: {u}" for u in unmet_live] + unmet
        never = load.in_flight
        for task in list(load.tasks):
            task.cancel()
        await load.drained()
        if not facts.db_error:
            await self.observer.compare_figures(facts, settle=3.0 if at is not None else 0.0)
        fault_mismatches = self.observer.differences(
            minus(facts.got, start_got), minus(self.observer.expected(), start_want)
        )
        once = await self.observer.exactly_once()
        pub = self.observer.publication(facts, before_records)
        stats = self.client.stats
        dead = sum(len(v) for v in facts.dead_letters.values())
        problems = list(t.problems)
        if caught_up is None or at is None:
            problems.append(f"not recovered within {cfg.recovery_deadline:.0f}s of the fault")
        if once["lost"]:
            problems.append(f"{len(once['lost'])} accepted writes lost: {once['lost'][:5]}")
        if once["doubled"]:
            problems.append(
                f"{len(once['doubled'])} accepted writes stored twice: {once['doubled'][:5]}"
            )
        if pub["missing_from_kafka"]:
            problems.append(f"{pub['missing_from_kafka']} stored events never reached Kafka")
        if pub["records_without_relay_headers"]:
            problems.append(
                f"{pub['records_without_relay_headers']} of {pub['records']} records carry no "
                "grid-relay-epoch / grid-relay-position headers: fencing cannot be verified"
            )
        if pub["positions_published_by_two_holders_count"]:
            problems.append(
                f"{pub['positions_published_by_two_holders_count']} positions published by two"
                f" relay holders: {pub['positions_published_by_two_holders'][:3]}"
            )
        if pub["zombie_records_count"]:
            problems.append(
                f"{pub['zombie_records_count']} records committed by a fenced holder after a newer"
                f" one: {pub['zombie_records'][:3]}"
            )
        if pub["header_position_mismatches"]:
            problems.append(
                f"grid-relay-position headers differ from the store: "
                f"{pub['header_position_mismatches'][:3]}"
            )
        if pub["records_without_event_in_store"]:
            problems.append(
                f"records whose event is in no store: {pub['records_without_event_in_store'][:3]}"
            )
        if dead:
            problems.append(
                f"{dead} dead letters: {dict((c, v[:2]) for c, v in facts.dead_letters.items())}"
            )
        if never or stats.gave_up:
            problems.append(
                f"{never + len(stats.gave_up)} writes never accepted: {stats.gave_up[:3]}"
            )
        if stats.rejected:
            problems.append(f"{len(stats.rejected)} writes refused for good: {stats.rejected[:3]}")
        if stats.replay_mismatch:
            problems.append(f"a retry answered differently: {stats.replay_mismatch[:3]}")
        consistency = list(problems)  # the figures are judged on their own (see below)
        if facts.figures:
            problems.append(
                f"{len(facts.figures)} places differ from the ledger"
                f" ({len(fault_mismatches)} by what this fault's window added):"
                f" {(fault_mismatches or facts.figures)[:3]}"
            )
        actions = [
            f"+{a.at - t.injected:.1f}s {a.replica}: {a.what} ({a.why})"
            for a in self.cluster.actions[actions_from:]
        ]
        result = FaultResult(
            fault=fault.name,
            generation=self.cluster.generation.number,
            recovered=caught_up is not None and at is not None,
            recovery_seconds=_since(caught_up, t.injected),
            after_heal_seconds=_since(caught_up, t.healed),
            settled_seconds=_since(at, t.injected),
            outage_seconds=round(t.healed - t.injected, 1),
            writes_accepted=self.district.ledger.total() - before_writes,
            writes_checked=once["checked"],
            lost=len(once["lost"]),
            doubled=len(once["doubled"]),
            republications=pub["republications_this_fault"],
            missing_from_kafka=pub["missing_from_kafka"],
            two_holders_same_position=pub["positions_published_by_two_holders_count"],
            zombie_records=pub["zombie_records_count"],
            dead_letters=dead,
            figure_mismatches=len(facts.figures),
            figure_mismatches_this_fault=len(fault_mismatches),
            attempts=stats.attempts,
            retries=dict(stats.retries.most_common()),
            never_accepted=never + len(stats.gave_up),
            orchestrator=actions,
            notes=t.notes,
            unmet_at_deadline=unmet,
            problems=problems,
            details={
                "publication": pub,
                "lag_api": _short(facts.lag_api),
                "figures": facts.figures[:20],
                "figures_this_fault": fault_mismatches[:20],
            },
        )
        if problems:
            result.logs = self._noteworthy(log_marks)
        # stores, topics or consumers left inconsistent spoil the generation; figures that
        # differ do not (the next fault is judged by what its own window adds)
        self.tainted = bool(consistency) or not result.recovered
        self.results.append(result)
        self.write_results()
        log(
            f"--- {fault.name}: "
            + (f"recovered in {result.recovery_seconds}s" if result.recovered else "NOT recovered")
            + f", {result.writes_accepted} writes, {len(problems)} problems"
        )
        return result

    def _noteworthy(self, marks: dict[str, int], per_replica: int = 12) -> dict[str, list[str]]:
        """Per replica, its log lines since the fault that say something went wrong (errors
        first), so that a failure report shows what each process went through."""
        out = {}
        for r in self.cluster.all():
            text = r.log_since(marks.get(r.name, 0))
            lines = [x[:300] for x in text.splitlines() if NOTEWORTHY.search(x)]
            lines.sort(key=lambda x: 0 if ERRORS.search(x) else 1)
            if not r.alive:
                lines.append(f"(process not running; exit code {r.proc and r.proc.poll()})")
            if lines:
                out[r.name] = _dedupe(lines)[:per_replica]
        return out

    # -- results ---------------------------------------------------------------------------

    def write_results(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "shared", "services"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        doc = {
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": commit + (" + uncommitted changes in shared/ services/" if dirty else ""),
            "setup_seconds": round(self.setup_seconds, 1),
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "config": {k: str(v) for k, v in asdict(self.config).items()},
            "seed_figure_mismatches": {g: m[:10] for g, m in self.seed_mismatches.items()},
            "faults": [asdict(r) for r in self.results],
        }
        (RESULTS / "latest.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))

    def table(self) -> str:
        head = (
            "fault",
            "recovered",
            "recovery s",
            "after heal s",
            "settled s",
            "writes",
            "checked",
            "lost",
            "doubled",
            "re-pub",
            "2 holders",
            "zombie",
            "dead",
            "figures",
            "fig(fault)",
        )
        rows = [head]
        for r in self.results:
            rows.append(
                (
                    r.fault,
                    "yes" if r.recovered else "NO",
                    _n(r.recovery_seconds),
                    _n(r.after_heal_seconds),
                    _n(r.settled_seconds),
                    str(r.writes_accepted),
                    str(r.writes_checked),
                    str(r.lost),
                    str(r.doubled),
                    str(r.republications),
                    str(r.two_holders_same_position),
                    str(r.zombie_records),
                    str(r.dead_letters),
                    str(r.figure_mismatches),
                    str(r.figure_mismatches_this_fault),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def minus(a: Figures, b: Figures) -> Figures:
    """Per place and metric, a - b (negative values kept)."""
    out: Figures = {}
    for node in a:
        pair = []
        for x, y in zip(a[node], b.get(node, (Counter(), Counter())), strict=True):
            c: Counter[str] = Counter()
            for m in set(x) | set(y):
                c[m] = x.get(m, 0) - y.get(m, 0)
            pair.append(c)
        out[node] = (pair[0], pair[1])
    return out


def _since(moment: float | None, start: float) -> float | None:
    return None if moment is None else round(moment - start, 1)


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _dedupe(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        key = re.sub(r"\d", "", line)
        if not out or re.sub(r"\d", "", out[-1]) != key:
            out.append(line)
    return out


def _short(lag_api: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for service, answer in lag_api.items():
        if isinstance(answer, dict):
            relay = answer.get("relay")
            out[service] = {
                "lag": answer.get("lag"),
                "status": answer.get("status"),
                "dead_letters": answer.get("dead_letters"),
                "relay_backlog": relay.get("backlog") if isinstance(relay, dict) else None,
                "lease": relay.get("lease") if isinstance(relay, dict) else None,
            }
        else:
            out[service] = answer
    return out
