"""A large district as contract events, for the report-query benchmark (B2).

Deterministic (seeded): 1 district -> 10 streets -> 5 communities each -> 4 grids each ->
buildings of 10 households -> households of 2-3 persons (3% vulnerable), registered a day
before the period; then, over `days` days: door/phone/notice visits with every outcome,
crossings with every decision at grid gates, twice-daily temperatures, key persons flagged
for one reason each, quarantines of every type, about 40% of them released later.

Each event is an envelope dict in the published wire form (what the relays put on the
topics), so it can be produced to Kafka as is and copied into a raw table for the baseline.
Every subject's events carry its household as `node_id`, so "the events under a place" is
`node_id` in the place's subtree for every event, raw or folded.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.contracts import checkpoint, registry, screening

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2022, 4, 1, tzinfo=ZONE)
NAMESPACE = uuid.UUID("6f1d3c1e-6b0c-4a55-9d0e-2b3a9a1f0b52")
DECISIONS = ["admit"] * 7 + ["deny", "persuade_return", "refer"]
OUTCOMES = ["screened"] * 6 + ["absent", "absent", "refused", "vacant"]
METHODS = ["door", "door", "phone", "notice"]
QUARANTINES = ["home", "home", "home_medical", "centralized"]
REASONS = ["returnee_risk_area", "close_contact", "fever"]
TOPICS = {
    "registry": registry.TOPIC,
    "screening": screening.TOPIC,
    "checkpoint": checkpoint.TOPIC,
}


@dataclass(frozen=True)
class Scale:
    events: int = 1_000_000
    households: int = 40_000
    days: int = 30
    seed: int = 8

    @property
    def key(self) -> str:
        return f"district-v1-e{self.events}-h{self.households}-d{self.days}-s{self.seed}"

    def day(self, i: int) -> date:
        return (START + timedelta(days=i)).date()


@dataclass
class Event:
    topic: str  # contract topic
    envelope: dict[str, Any]


def envelope(
    type_: str, stream: str, version: int, at: datetime, node: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    iso = at.isoformat()
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{stream}/{version}")),
        "type": type_,
        "schema_version": 1,
        "stream_id": stream,
        "stream_type": stream.split("-", 1)[0],
        "version": version,
        "occurred_at": iso,
        "recorded_at": iso,
        "node_id": node,
        "actor": "bench",
        "correlation_id": None,
        "causation_id": None,
        "data": data,
    }


@dataclass
class Tree:
    nodes: list[Event]
    households: list[str]
    probes: dict[str, str]  # level -> node id


def tree(scale: Scale) -> Tree:
    at = START - timedelta(days=2)
    nodes: list[Event] = []

    def node(node_id: str, parent: tuple[str, str] | None, kind: str) -> tuple[str, str]:
        path = (f"{parent[1]}." if parent else "") + node_id.replace("-", "_")
        data = {
            "node_id": node_id,
            "parent_id": parent[0] if parent else None,
            "kind": kind,
            "name": node_id,
            "path": path,
        }
        nodes.append(
            Event("registry", envelope("NodeCreated", f"node-{node_id}", 1, at, node_id, data))
        )
        return node_id, path

    per_grid = max(1, scale.households // 200)
    homes: list[str] = []
    root = node("d", None, "district")
    for s in range(10):
        street = node(f"s{s}", root, "street")
        for c in range(5):
            comm = node(f"s{s}-c{c}", street, "community")
            for g in range(4):
                grid = node(f"s{s}-c{c}-g{g}", comm, "grid")
                for b in range((per_grid + 9) // 10):
                    building = node(f"{grid[0]}-b{b}", grid, "building")
                    for h in range(min(10, per_grid - 10 * b)):
                        homes.append(node(f"{building[0]}-h{h}", building, "household")[0])
    probes = {"district": "d", "street": "s3", "community": "s3-c2", "grid": "s3-c2-g1"}
    return Tree(nodes, homes, probes)


def events(scale: Scale) -> Iterator[Event]:
    """Every event of the data set, registry first, then the field events in time order."""
    rng = random.Random(scale.seed)
    t = tree(scale)
    yield from t.nodes
    at = START - timedelta(days=1)
    persons: list[tuple[str, str]] = []
    for h in t.households:
        yield Event(
            "registry",
            envelope(
                "HouseholdRegistered",
                f"household-{h}",
                1,
                at,
                h,
                {"household_id": h, "node_id": h},
            ),
        )
        for k in range(2 + rng.randrange(2)):
            pid = f"p-{h}-{k}"
            persons.append((pid, h))
            data = {
                "person_id": pid,
                "household_id": h,
                "residency": rng.choice(["resident"] * 8 + ["temporary", "visitor"]),
                "tags": ["低保"] if rng.random() < 0.03 else [],
                "document_type": "resident_id",
                "document_masked": "110105********1234",
                "name_masked": "张*",
                "id_hmac": f"{rng.getrandbits(256):064x}",
            }
            yield Event("registry", envelope("PersonRegistered", f"person-{pid}", 1, at, h, data))
    made = len(t.nodes) + len(t.households) + len(persons)
    field = max(0, scale.events - made)
    grids = sorted({h.rsplit("-", 2)[0] for h in t.households})
    unflagged = list(range(len(persons)))
    rng.shuffle(unflagged)
    unquarantined = list(range(len(persons)))
    rng.shuffle(unquarantined)
    releases: list[tuple[datetime, Event]] = []
    seconds = scale.days * 86400
    for i in range(field):
        moment = START + timedelta(seconds=seconds * i // max(1, field))
        while releases and releases[0][0] <= moment:
            yield releases.pop(0)[1]
        roll = rng.random()
        if roll < 0.40:
            g = rng.choice(grids)
            data = {
                "crossing_id": f"x{i}",
                "checkpoint_id": f"gate-{g}",
                "node_id": g,
                "kind": "person",
                "direction": rng.choice(["in", "out"]),
                "decision": rng.choice(DECISIONS),
                "reasons": [],
                "recorded_by": "gk",
            }
            yield Event(
                "checkpoint", envelope("CrossingRecorded", f"crossing-x{i}", 1, moment, g, data)
            )
        elif roll < 0.80:
            pid, h = persons[rng.randrange(len(persons))]
            data = {
                "reading_id": f"r{i}",
                "subject_id": pid,
                "celsius": round(rng.uniform(36.0, 37.8), 1),
                "slot_day": moment.astimezone(ZONE).date().isoformat(),
                "slot": "08:00-10:00" if moment.astimezone(ZONE).hour < 12 else "16:00-18:00",
                "late": rng.random() < 0.05,
                "recorded_by": "medic",
            }
            yield Event(
                "screening", envelope("TemperatureRecorded", f"reading-r{i}", 1, moment, h, data)
            )
        elif roll < 0.92:
            h = t.households[rng.randrange(len(t.households))]
            data = {
                "visit_id": f"v{i}",
                "household_id": h,
                "method": rng.choice(METHODS),
                "outcome": rng.choice(OUTCOMES),
                "commitment_signed": rng.random() < 0.4,
                "visitor": "worker",
            }
            yield Event(
                "screening", envelope("HouseholdVisited", f"visit-v{i}", 1, moment, h, data)
            )
        elif roll < 0.95 and unflagged:
            pid, h = persons[unflagged.pop()]
            data = {
                "subject_id": pid,
                "node_id": h,
                "reasons": [rng.choice(REASONS)],
                "source": "inquiry",
            }
            yield Event(
                "screening", envelope("KeyPersonFlagged", f"keyperson-{pid}", 1, moment, h, data)
            )
        elif unquarantined:
            pid, h = persons[unquarantined.pop()]
            stream = f"watch-{pid}"
            data = {
                "quarantine_id": f"q-{pid}",
                "subject_id": pid,
                "node_id": h,
                "type": rng.choice(QUARANTINES),
                "starts_at": moment.isoformat(),
                "planned_end": (moment + timedelta(days=14)).date().isoformat(),
            }
            yield Event("screening", envelope("QuarantineOrdered", stream, 1, moment, h, data))
            if rng.random() < 0.4:
                end = moment + timedelta(days=rng.randrange(3, 15), hours=rng.randrange(24))
                released = {
                    "quarantine_id": f"q-{pid}",
                    "subject_id": pid,
                    "released_at": end.isoformat(),
                    "reason": "period over",
                }
                event = Event(
                    "screening", envelope("QuarantineReleased", stream, 2, end, h, released)
                )
                _insert_sorted(releases, (end, event))
    for _, event in releases:
        yield event


def _insert_sorted(queue: list[tuple[datetime, Event]], item: tuple[datetime, Event]) -> None:
    lo, hi = 0, len(queue)
    while lo < hi:
        mid = (lo + hi) // 2
        if queue[mid][0] <= item[0]:
            lo = mid + 1
        else:
            hi = mid
    queue.insert(lo, item)
