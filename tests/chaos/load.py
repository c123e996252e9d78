"""The load generator: a seeded field-app client that writes through random replicas, retries
every write with the same id / Idempotency-Key and the same body until it is accepted, and
keeps a ledger of what was accepted, from which it computes the figures reporting must show.

What it writes (each a write an app or a gate device would send):

* registry: households (by Idempotency-Key, no id), their persons (client ids), now and then
  a new building;
* screening: door-to-door visits to the seeded households, temperatures of the persons
  under quarantine (`temperatures:batch`);
* checkpoint: crossings at the seeded gates (`crossings:batch`), each decided by the server:
  the ledger keeps the decision the server answered.

All flows are dated on one day (`day0`, yesterday in the system zone when the session
started), so that the figures of that day are exactly the ledger's; stocks are compared as of
today. Nothing here reads a store or a read model: the expectation comes from the answers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from scenario.http import not_known_yet, not_yet
from shared.auth import ALL_NODES, issue_token
from shared.identity import resident_id_check_digit
from shared.settings import ServiceSettings
from tests.chaos.harness import Cluster, Config

ZONE = ZoneInfo("Asia/Shanghai")
OPEN_POLICY = {"residents_only": False, "health_code_colours": ["green"]}
VISITS = [  # (method, outcome, commitment_signed, steps): combinations screening accepts
    ("door", "screened", True, ["greet", "qr_scanned", "notice_handed", "inquiry_recorded"]),
    ("door", "absent", False, ["greet", "notice_handed"]),
    ("door", "refused", False, ["greet"]),
    ("phone", "absent", False, ["greet"]),
    ("notice", "screened", True, []),
]
FLOW_METRICS = ("visits", "visits.", "followups.done", "followups.late", "crossings")
STOCK_METRICS = (
    "households",
    "persons",
    "persons.resident",
    "persons.temporary",
    "screened_households",
    "under_quarantine",
    "under_quarantine.home",
)


class Rejected(Exception):
    """The service refused the write for good (a bug of the generator, or of the service)."""


class GaveUp(Exception):
    """The write was not accepted within the client's patience."""


def national_id(region: str, n: int) -> str:
    """A valid GB 11643 number, unique per (region, n)."""
    born = date(1950, 1, 1) + timedelta(days=n // 900)
    first17 = f"{region}{born:%Y%m%d}{n % 900 + 100:03d}"
    return first17 + resident_id_check_digit(first17)


def local(day: date, minutes: int) -> str:
    """`minutes` after midnight of `day` in the system zone, ISO 8601."""
    return (datetime.combine(day, dtime(0), tzinfo=ZONE) + timedelta(minutes=minutes)).isoformat()


@dataclass
class Stats:
    """What the client saw, per fault (reset by `LoadGenerator`)."""

    writes: Counter[str] = field(default_factory=Counter)  # accepted items by kind
    attempts: int = 0
    retries: Counter[str] = field(default_factory=Counter)  # by reason
    rejected: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    replay_mismatch: list[str] = field(default_factory=list)
    first_failure: float | None = None
    last_failure: float | None = None
    retrying: int = 0  # writes that failed at least once and are not accepted yet

    def failed(self, reason: str) -> None:
        now = time.monotonic()
        self.retries[reason] += 1
        self.first_failure = self.first_failure or now
        self.last_failure = now


class Client:
    """Writes through a random replica per attempt, as behind a load balancer that sends
    requests to the replicas whose readiness probe passed last (`Cluster.routable`)."""

    def __init__(self, config: Config, cluster: Cluster, rng: random.Random) -> None:
        self.config = config
        self.cluster = cluster
        self.rng = rng
        self.http = httpx.AsyncClient(
            timeout=config.request_timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        settings = ServiceSettings(jwt_secret=cluster.secrets.jwt_secret)
        self._tokens = {
            role: {
                "Authorization": "Bearer "
                + issue_token(
                    settings,
                    sub=f"chaos-{role}",
                    roles=[role],
                    scope=[ALL_NODES],
                    ttl_seconds=86400,
                )
            }
            for role in ("admin", "registrar", "grid_worker", "medic", "command")
        }
        self.stats = Stats()

    def headers(self, role: str) -> dict[str, str]:
        return self._tokens[role]

    def url(self, service: str) -> str:
        return self.rng.choice(self.cluster.routable(service)).url

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(min(2.0, 0.2 * 2 ** min(attempt, 4)) * (0.5 + self.rng.random()))

    async def write(
        self,
        service: str,
        path: str,
        role: str,
        body: dict[str, Any],
        *,
        key: str | None = None,
        what: str,
    ) -> dict[str, Any]:
        """POST until accepted (2xx); the same body and key every time."""
        headers = dict(self.headers(role))
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.config.write_patience
        attempt = 0
        stats = self.stats
        counted = False  # in stats.retrying
        try:
            while True:
                attempt += 1
                stats.attempts += 1
                try:
                    r = await self.http.post(self.url(service) + path, json=body, headers=headers)
                except httpx.TransportError as exc:
                    reason = f"{service}: {type(exc).__name__}"
                else:
                    if r.status_code in (200, 201):
                        return dict(r.json())
                    retry = (
                        r.status_code >= 500
                        or r.status_code in (409, 429)
                        or (r.status_code in (404, 422) and not_yet(r.text))
                    )
                    if not retry:
                        raise Rejected(f"{what}: {r.status_code} {r.text[:300]}")
                    reason = f"{service}: HTTP {r.status_code}"
                if not counted:
                    stats.retrying += 1
                    counted = True
                stats.failed(reason)
                if time.monotonic() > deadline:
                    raise GaveUp(f"{what}: not accepted after {attempt} attempts")
                await self._backoff(attempt)
        finally:
            if counted:
                stats.retrying -= 1

    async def batch(
        self, service: str, path: str, role: str, items: list[dict[str, Any]], *, what: str
    ) -> dict[str, dict[str, Any]]:
        """Upload until every item is accepted (created/unchanged) or refused for good; the
        same upload every time. Returns each accepted item's first answer by id."""
        accepted: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        deadline = time.monotonic() + self.config.write_patience
        attempt = 0
        while True:
            attempt += 1
            out = await self.write(service, path, role, {"items": items}, what=what)
            pending = False
            for result in out["results"]:
                item_id = items[result["index"]]["id"]
                if result["status"] in ("created", "unchanged"):
                    first = accepted.setdefault(item_id, result)
                    if first is not result and _decided(first) != _decided(result):
                        self.stats.replay_mismatch.append(
                            f"{what} {item_id}: {first} then {result}"
                        )
                elif not_known_yet(result):
                    pending = True
                else:
                    refused[item_id] = f"{result.get('code')} {result.get('reason')}"
            if not pending:
                break
            if time.monotonic() > deadline:
                raise GaveUp(f"{what}: items not known after {attempt} uploads")
            self.stats.failed(f"{service}: item not known yet")
            await self._backoff(attempt)
        for item_id, reason in refused.items():
            if item_id not in accepted:
                self.stats.rejected.append(f"{what} item {item_id}: {reason}")
        return accepted


def _decided(result: dict[str, Any]) -> Any:
    return (result.get("decision"), result.get("late"), result.get("slot"), result.get("slot_day"))


# -- the ledger -----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything accepted, and the figures that follow from it."""

    day0: date
    parent: dict[str, str | None] = field(default_factory=dict)  # place -> parent place
    kind: dict[str, str] = field(default_factory=dict)
    households: dict[str, str] = field(default_factory=dict)  # household -> parent place
    persons: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> household, residency
    quarantined: dict[str, str] = field(default_factory=dict)  # subject -> type
    checkpoints: dict[str, str] = field(default_factory=dict)  # checkpoint -> node
    visits: dict[str, tuple[str, str, str, bool]] = field(default_factory=dict)
    readings: dict[str, tuple[str, bool]] = field(default_factory=dict)  # -> subject, late
    crossings: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> checkpoint, decision

    # what each accepted write must have left in its store: (service, event type, data key)
    KINDS = {
        "node": ("registry", "NodeCreated", "node_id"),
        "household": ("registry", "HouseholdRegistered", "household_id"),
        "person": ("registry", "PersonRegistered", "person_id"),
        "quarantine": ("screening", "QuarantineOrdered", "quarantine_id"),
        "visit": ("screening", "HouseholdVisited", "visit_id"),
        "reading": ("screening", "TemperatureRecorded", "reading_id"),
        "checkpoint": ("checkpoint", "CheckpointOpened", "checkpoint_id"),
        "crossing": ("checkpoint", "CrossingRecorded", "crossing_id"),
    }

    def __post_init__(self) -> None:
        self.ids: dict[str, set[str]] = defaultdict(set)  # kind -> accepted ids

    def accepted(self, kind: str, item_id: str) -> None:
        self.ids[kind].add(item_id)

    def total(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def line(self, node: str) -> list[str]:
        """The node and its ancestors."""
        out: list[str] = []
        current: str | None = node
        while current is not None:
            out.append(current)
            current = self.households.get(current) or self.parent.get(current)
        return out

    def places(self) -> list[str]:
        return sorted(self.kind)

    def expected(self) -> dict[str, tuple[Counter[str], Counter[str]]]:
        """Per place: (flows of day0, stocks at the end of today)."""
        flows: dict[str, Counter[str]] = defaultdict(Counter)
        stocks: dict[str, Counter[str]] = defaultdict(Counter)

        def add(table: dict[str, Counter[str]], node: str, metrics: list[str]) -> None:
            for n in self.line(node):
                for m in metrics:
                    table[n][m] += 1

        for household in self.households:
            add(stocks, household, ["households"])
        for household, residency in self.persons.values():
            add(stocks, household, ["persons", f"persons.{residency}"])
        screened = set()
        for household, method, outcome, signed in self.visits.values():
            metrics = ["visits", f"visits.{method}", f"visits.outcome.{outcome}"]
            if signed:
                metrics.append("visits.signed")
            add(flows, household, metrics)
            if outcome == "screened":  # a visit screens its household
                screened.add(household)
        for household in screened:
            add(stocks, household, ["screened_households"])
        for subject, qtype in self.quarantined.items():
            add(stocks, self.persons[subject][0], ["under_quarantine", f"under_quarantine.{qtype}"])
        for subject, late in self.readings.values():
            add(
                flows,
                self.persons[subject][0],
                ["followups.done"] + (["followups.late"] if late else []),
            )
        for checkpoint, decision in self.crossings.values():
            add(flows, self.checkpoints[checkpoint], ["crossings", f"crossings.{decision}"])
        return {p: (flows[p], stocks[p]) for p in self.places()}


def comparable_flows(flows: dict[str, int]) -> dict[str, int]:
    return {m: v for m, v in flows.items() if m.startswith(FLOW_METRICS) and v}


def comparable_stocks(stocks: dict[str, int]) -> dict[str, int]:
    return {m: v for m, v in stocks.items() if m in STOCK_METRICS and v}


def coverage(stocks: dict[str, int]) -> float | None:
    if stocks.get("households", 0) <= 0:
        return None
    return round(100.0 * stocks.get("screened_households", 0) / stocks["households"], 2)


# -- the district and the load ----------------------------------------------------------------


class District:
    """The seeded world of one generation, and the writes made on it."""

    def __init__(self, config: Config, cluster: Cluster, client: Client, gen: int) -> None:
        self.config = config
        self.cluster = cluster
        self.client = client
        self.gen = gen
        self.rng = random.Random(config.seed * 1000 + gen)
        now = datetime.now(UTC).astimezone(ZONE)
        self.ledger = Ledger(day0=now.date() - timedelta(days=1))
        self.root = f"g{gen}-district"
        self.buildings: list[str] = []
        self.grids: list[str] = []
        self.seeded_households: list[str] = []
        self.watched: list[str] = []
        self.gates: list[str] = []
        self._n = 0
        self._documents = 0

    def next_id(self, prefix: str) -> str:
        self._n += 1
        return f"g{self.gen}-{prefix}-{self._n}"

    def document(self, region: str = "110105") -> str:
        self._documents += 1
        return national_id(region, self.gen * 100_000 + self._documents)

    # -- writes ----------------------------------------------------------------------------

    async def node(self, node_id: str, parent: str | None, kind: str, name: str) -> None:
        await self.client.write(
            "registry",
            "/v1/nodes",
            "admin" if parent is None else "registrar",
            {"id": node_id, "parent_id": parent, "kind": kind, "name": name},
            what=f"node {node_id}",
        )
        self.ledger.parent[node_id] = parent
        self.ledger.kind[node_id] = kind
        self.ledger.accepted("node", node_id)
        self.client.stats.writes["node"] += 1

    async def household(
        self, parent: str, *, key: str | None = None, hid: str | None = None
    ) -> str:
        body: dict[str, Any] = {
            "parent_id": parent,
            "door_number": str(self.rng.randint(101, 2999)),
        }
        if hid is not None:
            body["id"] = hid
        out = await self.client.write(
            "registry", "/v1/households", "registrar", body, key=key, what=f"household {key or hid}"
        )
        household_id = str(out["id"])
        self.ledger.households[household_id] = parent
        self.ledger.accepted("household", household_id)
        self.client.stats.writes["household"] += 1
        return household_id

    async def person(self, household: str) -> str:
        pid = self.next_id("p")
        residency = self.rng.choice(["resident", "resident", "temporary"])
        await self.client.write(
            "registry",
            "/v1/persons",
            "registrar",
            {
                "id": pid,
                "household_id": household,
                "name": f"居民{self._n}",
                "document_number": self.document(),
                "residency": residency,
            },
            what=f"person {pid}",
        )
        self.ledger.persons[pid] = (household, residency)
        self.ledger.accepted("person", pid)
        self.client.stats.writes["person"] += 1
        return pid

    async def quarantine(self, subject: str) -> None:
        qid = f"q-{subject}"
        await self.client.write(
            "screening",
            "/v1/quarantines",
            "medic",
            {
                "id": qid,
                "subject_id": subject,
                "type": "home",
                "starts_at": local(self.ledger.day0 - timedelta(days=2), 7 * 60),
                "planned_end": (self.ledger.day0 + timedelta(days=14)).isoformat(),
            },
            what=f"quarantine {qid}",
        )
        self.ledger.quarantined[subject] = "home"
        self.ledger.accepted("quarantine", qid)
        self.client.stats.writes["quarantine"] += 1

    async def checkpoint(self, node: str) -> None:
        cid = f"g{self.gen}-gate-{node}"
        await self.client.write(
            "checkpoint",
            "/v1/checkpoints",
            "admin",
            {
                "id": cid,
                "node_id": node,
                "name": f"{node} 卡口",
                "level": "compound",
                "policy": OPEN_POLICY,
                "opened_at": local(self.ledger.day0 - timedelta(days=3), 0),
            },
            what=f"checkpoint {cid}",
        )
        self.ledger.checkpoints[cid] = node
        self.ledger.accepted("checkpoint", cid)
        self.client.stats.writes["checkpoint"] += 1
        self.gates.append(cid)

    async def visit(self) -> None:
        household = self.rng.choice(self.seeded_households)
        method, outcome, signed, steps = self.rng.choice(VISITS)
        vid = self.next_id("v")
        await self.client.write(
            "screening",
            "/v1/visits",
            "grid_worker",
            {
                "id": vid,
                "household_id": household,
                "method": method,
                "outcome": outcome,
                "commitment_signed": signed,
                "steps": steps,
                "occurred_at": local(self.ledger.day0, self.rng.randint(8 * 60, 22 * 60)),
            },
            what=f"visit {vid}",
        )
        self.ledger.visits[vid] = (household, method, outcome, signed)
        self.ledger.accepted("visit", vid)
        self.client.stats.writes["visit"] += 1

    async def readings(self, n: int = 3) -> None:
        items = [
            {
                "id": self.next_id("t"),
                "subject_id": self.rng.choice(self.watched),
                "celsius": round(self.rng.uniform(36.0, 37.1), 1),
                "occurred_at": local(self.ledger.day0, self.rng.randint(8 * 60 + 5, 22 * 60)),
            }
            for _ in range(n)
        ]
        out = await self.client.batch(
            "screening", "/v1/temperatures:batch", "medic", items, what="temperatures"
        )
        for item in items:
            if item["id"] in out:
                self.ledger.readings[item["id"]] = (
                    item["subject_id"],
                    bool(out[item["id"]]["late"]),
                )
                self.ledger.accepted("reading", item["id"])
                self.client.stats.writes["reading"] += 1

    async def crossings(self, n: int = 5) -> None:
        items = []
        for _ in range(n):
            code = self.rng.choices(["green", "yellow", "red"], [8, 1, 1])[0]
            items.append(
                {
                    "id": self.next_id("x"),
                    "checkpoint_id": self.rng.choice(self.gates),
                    "direction": self.rng.choice(["in", "out"]),
                    "document_number": self.document("320102"),
                    "health_code": code,
                    "temperature": self.rng.choice([36.2, 36.5, 36.8, 37.0, 38.1]),
                    "occurred_at": local(self.ledger.day0, self.rng.randint(10, 23 * 60 + 50)),
                }
            )
        out = await self.client.batch(
            "checkpoint", "/v1/crossings:batch", "admin", items, what="crossings"
        )
        for item in items:
            if item["id"] in out:
                self.ledger.crossings[item["id"]] = (
                    item["checkpoint_id"],
                    out[item["id"]]["decision"],
                )
                self.ledger.accepted("crossing", item["id"])
                self.client.stats.writes["crossing"] += 1

    async def family(self) -> None:
        """A household registered by Idempotency-Key, and two persons in it."""
        household = await self.household(
            self.rng.choice(self.buildings), key=self.next_id("hh-key")
        )
        for _ in range(2):
            await self.person(household)

    async def new_building(self) -> None:
        bid = self.next_id("b")
        await self.node(bid, self.rng.choice(self.grids), "building", f"{bid}栋")
        self.buildings.append(bid)

    # -- the seed --------------------------------------------------------------------------

    async def seed(self) -> None:
        """2 streets x 2 communities x 1 grid x 2 buildings x 3 households x 2 persons, a gate
        per community, six persons under home quarantine since two days before day0."""
        await self.node(self.root, None, "district", "混沌示范区")
        for s in (1, 2):
            street = f"{self.root}-s{s}"
            await self.node(street, self.root, "street", f"第{s}街道")
            for c in (1, 2):
                community = f"{street}-c{c}"
                await self.node(community, street, "community", f"第{c}社区")
                grid = f"{community}-g1"
                await self.node(grid, community, "grid", "第1网格")
                self.grids.append(grid)
                for b in (1, 2):
                    building = f"{grid}-b{b}"
                    await self.node(building, grid, "building", f"{b}栋")
                    self.buildings.append(building)
        for building in list(self.buildings):
            for h in (1, 2, 3):
                household = await self.household(building, hid=f"{building}-h{h}")
                self.seeded_households.append(household)
                for _ in range(2):
                    await self.person(household)
        persons = sorted(self.ledger.persons)
        self.watched = self.rng.sample(persons, 6)
        await asyncio.gather(*(self.quarantine(p) for p in self.watched))
        communities = sorted(n for n, k in self.ledger.kind.items() if k == "community")
        await asyncio.gather(*(self.checkpoint(c) for c in communities))
        # the first uploads wait (retrying) until screening and checkpoint know the places
        await asyncio.gather(self.visit(), self.readings(1), self.crossings(1))


class LoadGenerator:
    """Open loop: starts a write every 1/rate seconds, whatever became of the earlier ones
    (a district of field apps does not wait for the server), at most `cap` in flight."""

    # (what, items it writes, weight)
    MIX = (
        ("crossings", 5, 30),
        ("visit", 1, 25),
        ("readings", 3, 20),
        ("family", 3, 20),
        ("new_building", 1, 5),
    )

    def __init__(self, district: District, rate: float, cap: int = 40) -> None:
        self.district = district
        self.rng = random.Random(district.rng.random())
        per_action = sum(n * w for _, n, w in self.MIX) / sum(w for *_, w in self.MIX)
        self.interval = per_action / rate
        self.cap = cap
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.started = 0
        self.skipped = 0
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="chaos-load")

    async def _run(self) -> None:
        names = [m[0] for m in self.MIX]
        weights = [m[2] for m in self.MIX]
        while not self.stop.is_set():
            if len(self.tasks) < self.cap:
                action = self.rng.choices(names, weights)[0]
                task = asyncio.create_task(self._one(action))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                self.started += 1
            else:
                self.skipped += 1
            try:
                await asyncio.wait_for(self.stop.wait(), self.interval)
            except TimeoutError:
                pass

    async def _one(self, action: str) -> None:
        stats = self.district.client.stats
        try:
            await getattr(self.district, action)()
        except Rejected as exc:
            stats.rejected.append(str(exc))
        except GaveUp as exc:
            stats.gave_up.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - an answer the client cannot read
            stats.rejected.append(f"{action}: {type(exc).__name__}: {exc}")

    async def finish(self) -> None:
        """No new writes; the ones in flight go on until accepted (or the client gives up)."""
        self.stop.set()
        if self._loop is not None:
            await self._loop

    @property
    def in_flight(self) -> int:
        return len(self.tasks)

    async def drained(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
