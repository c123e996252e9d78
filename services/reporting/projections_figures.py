"""The `figures` read model: per (node, day, metric) for each node and all its ancestors.

Each batch of events is folded in Python into node-level deltas (`figures` says which event
adds what); at the end of the batch the deltas are spread over each node's ancestors, taken
from the node's path, and written with ONE upsert
(`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE SET value = value + EXCLUDED.value`).
The state the events need is read per batch too: where the subjects live, which visits are
stored and since when each visited household counts as screened (kept current in Python,
new visits written in one statement); a run of `NodeCreated` is written in one statement.

Ordering. This consumer keeps its own copy of the place tree (`fig_places`) from the
`registry.events` it reads anyway, so a move and the figures under it are applied in one
order, in one transaction each: deltas gathered so far are written before a node is moved.
A move takes the moved node's own rows (which already hold its whole subtree) off the old
ancestors and adds them to the new ones. An event about a node this consumer has not
seen yet (the registry's partition may lag the screening one) waits in `fig_pending` and is
applied when the node's `NodeCreated` arrives.

Corrections. What a voidable record (a person, a visit) added is logged in
`fig_contributions`; voiding it adds the negation at the same nodes (wherever they sit now).

Idempotency (dedupe by stream and version, offsets in the same transaction) is the consumer
base's job; everything here is deterministic per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from functools import cached_property
from typing import Any

from services.reporting import figures
from services.reporting.config import ReportingSettings
from shared.contracts import EventPayload
from shared.contracts.checkpoint import (
    CheckpointOpened,
    CrossingRecorded,
    QuarantineBreachAttempted,
)
from shared.contracts.published import decode
from shared.contracts.registry import (
    HouseholdRegistered,
    NodeCreated,
    NodeMoved,
    PersonMoved,
    PersonRegistered,
    PersonResidencyChanged,
    PersonTagsChanged,
    PersonVoided,
)
from shared.contracts.screening import (
    CareTaskCompleted,
    CareTaskMissed,
    FollowUpMissed,
    HouseholdVisited,
    KeyPersonCleared,
    KeyPersonFlagged,
    ObservationStarted,
    PersonInquired,
    QuarantineExtended,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    SampleCollected,
    TemperatureRecorded,
    TestResulted,
    VaccineDoseGiven,
    VisitVoided,
)
from shared.db import advisory_key
from shared.envelope import Envelope
from shared.places import move_subtree_sql, stale_children_sql

Key = tuple[str, date, str]

# rows in key order: one lock order for every writer (sorted by Postgres, not in Python)
UPSERT_METRICS = """
INSERT INTO node_day_metrics (node_id, day, metric, value)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[]) ORDER BY 1, 2, 3
ON CONFLICT (node_id, day, metric)
DO UPDATE SET value = node_day_metrics.value + EXCLUDED.value
"""

UPSERT_PENDING = UPSERT_METRICS.replace("node_day_metrics", "fig_pending")

# the moved node's rows, added to each (ancestor, sign): -1 for the old, +1 for the new ones
TRANSFER = """
INSERT INTO node_day_metrics (node_id, day, metric, value)
SELECT a.node_id, m.day, m.metric, m.value * a.sign
FROM node_day_metrics m CROSS JOIN unnest($2::text[], $3::int[]) AS a(node_id, sign)
WHERE m.node_id = $1
ON CONFLICT (node_id, day, metric)
DO UPDATE SET value = node_day_metrics.value + EXCLUDED.value
"""

MOVE_FIG_PLACES = move_subtree_sql("fig_places")
STALE_FIG_CHILDREN = stale_children_sql("fig_places")


def ids_of(path: str) -> list[str]:
    """Node ids along an ltree path, root first (labels are ids with `-` as `_`)."""
    return [label.replace("_", "-") for label in path.split(".")] if path else []


@dataclass
class Visits:
    """The batch's visits: ids known (stored or new), each household's earliest standing
    screened day as of the events so far, and the rows not written yet."""

    known: set[str] = field(default_factory=set)
    since: dict[str, date | None] = field(default_factory=dict)
    unwritten: list[tuple[str, str, date, bool]] = field(default_factory=list)


@dataclass
class Batch:
    """Node-level deltas of the events seen since the last flush."""

    zone: tzinfo
    deltas: defaultdict[Key, int] = field(default_factory=lambda: defaultdict(int))
    contributions: list[tuple[str, str, date, str, int]] = field(default_factory=list)
    homes: dict[str, str | None] = field(default_factory=dict)
    visits: Visits = field(default_factory=lambda: Visits())

    def day(self, env: Envelope) -> date:
        return figures.day_of(env.occurred_at, self.zone)

    def add(
        self,
        node_id: str | None,
        day: date,
        changes: Iterable[figures.Change],
        record: str | None = None,
    ) -> None:
        if node_id is None:
            return
        for metric, value in changes:
            self.deltas[(node_id, day, metric)] += value
            if record is not None:
                self.contributions.append((record, node_id, day, metric, value))


async def flush(conn: Any, batch: Batch) -> None:
    """Spread the batch's deltas over each node and its ancestors; one upsert."""
    if batch.contributions:
        columns = [list(c) for c in zip(*batch.contributions, strict=True)]
        await conn.execute(
            "INSERT INTO fig_contributions (record, node_id, day, metric, value)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::bigint[])",
            *columns,
        )
        batch.contributions.clear()
    deltas = {k: v for k, v in batch.deltas.items() if v}
    batch.deltas.clear()
    if not deltas:
        return
    lines = await _lines(conn, {node for node, _, _ in deltas})
    unknown = {node for node, _, _ in deltas if node not in lines}
    if unknown:
        # Another replica may be creating these places right now, its transaction draining
        # `fig_pending` before ours is committed: take the places' locks (as creating them
        # does), then look again, so a delta is either spread or seen by the creator.
        await lock_places(conn, unknown)
        lines.update(await _lines(conn, unknown))
    spread: defaultdict[Key, int] = defaultdict(int)
    pending: dict[Key, int] = {}
    for (node, day, metric), value in deltas.items():
        line = lines.get(node)
        if line is None:
            pending[(node, day, metric)] = value
            continue
        for ancestor in line:
            spread[(ancestor, day, metric)] += value
    for sql, items in ((UPSERT_METRICS, spread), (UPSERT_PENDING, pending)):
        rows = [(k, v) for k, v in items.items() if v]
        if rows:
            await conn.execute(
                sql,
                [k[0] for k, _ in rows],
                [k[1] for k, _ in rows],
                [k[2] for k, _ in rows],
                [v for _, v in rows],
            )


async def _lines(conn: Any, nodes: set[str]) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT id, path::text AS path FROM fig_places WHERE id = ANY($1::text[])", list(nodes)
    )
    return {r["id"]: ids_of(r["path"]) for r in rows}


async def lock_places(conn: Any, nodes: Iterable[str]) -> None:
    """Transaction locks on places of `fig_places`, in one order (no deadlock between two
    takers of several): held by whoever creates a place and by whoever parks a delta for a
    place not seen yet, so consumers on two replicas cannot strand a delta in `fig_pending`."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        sorted({advisory_key(f"fig-place:{n}") for n in nodes}),
    )


# -- where an event counts -----------------------------------------------------------------


async def home_of(conn: Any, batch: Batch, subject_id: str) -> str | None:
    """The household of a registered, standing person (None for `h:` subjects)."""
    if subject_id.startswith("h:"):
        return None
    if subject_id not in batch.homes:
        batch.homes[subject_id] = await conn.fetchval(
            "SELECT household_id FROM fig_persons WHERE id = $1 AND NOT voided", subject_id
        )
    return batch.homes[subject_id]


async def prefetch_homes(conn: Any, batch: Batch, payloads: Iterable[EventPayload]) -> None:
    """Where the batch's subjects live, in one query (handlers keep it current)."""
    subjects = {
        str(getattr(p, "subject_id", None) or getattr(p, "target_id", "")) for p in payloads
    }
    subjects = {s for s in subjects if s and not s.startswith("h:")}
    if not subjects:
        return
    rows = await conn.fetch(
        "SELECT id, household_id FROM fig_persons WHERE id = ANY($1::text[]) AND NOT voided",
        list(subjects),
    )
    batch.homes.update(dict.fromkeys(subjects))
    batch.homes.update({r["id"]: r["household_id"] for r in rows})


async def subject_node(
    conn: Any, batch: Batch, subject_id: str, *fallbacks: str | None
) -> str | None:
    home = await home_of(conn, batch, subject_id)
    if home is not None:
        return home
    return next((f for f in fallbacks if f), None)


# -- the place tree ---------------------------------------------------------------------------


async def on_nodes_created(conn: Any, created: Sequence[NodeCreated], batch: Batch) -> None:
    """A run of `NodeCreated`: the new rows in one statement (a node takes its parent's
    current path when the parent is known, else the event's), then what waited for them.
    Deltas gathered before need not be written first: a new node changes no one's path, and
    what they hold for it now spreads over its line instead of waiting in `fig_pending`."""
    await lock_places(conn, {e.node_id for e in created})
    asked = {e.node_id for e in created} | {e.parent_id for e in created if e.parent_id}
    rows = await conn.fetch(
        "SELECT id, path::text AS path FROM fig_places WHERE id = ANY($1::text[])", list(asked)
    )
    paths: dict[str, str] = {r["id"]: r["path"] for r in rows}
    new: list[tuple[str, str | None, str]] = []
    for e in created:
        if e.node_id in paths:
            continue  # known already: left as it is
        parent = paths.get(e.parent_id) if e.parent_id else None
        path = f"{parent}.{e.path.rsplit('.', 1)[-1]}" if parent else e.path
        paths[e.node_id] = path
        new.append((e.node_id, e.parent_id, path))
    if not new:
        return
    await conn.execute(
        "INSERT INTO fig_places (id, parent_id, path)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::ltree[]) ON CONFLICT (id) DO NOTHING",
        [n for n, _, _ in new],
        [p for _, p, _ in new],
        [path for _, _, path in new],
    )
    waiting = await conn.fetch(
        "DELETE FROM fig_pending WHERE node_id = ANY($1::text[])"
        " RETURNING node_id, day, metric, value",
        [n for n, _, _ in new],
    )
    for row in waiting:
        batch.deltas[(row["node_id"], row["day"], row["metric"])] += row["value"]
    # children that came first under a path an ancestor's move has changed since
    for node_id, _, _ in new:
        for child in await conn.fetch(STALE_FIG_CHILDREN, node_id):
            await flush(conn, batch)
            await reroot(conn, child["id"], child["old"], child["new"])


async def on_node_moved(conn: Any, env: Envelope, e: NodeMoved, batch: Batch) -> None:
    await flush(conn, batch)
    old = await conn.fetchval("SELECT path::text FROM fig_places WHERE id = $1", e.node_id)
    old = old or e.old_path
    parent = await conn.fetchval("SELECT path::text FROM fig_places WHERE id = $1", e.new_parent_id)
    new = f"{parent}.{old.rsplit('.', 1)[-1]}" if parent else e.new_path
    await reroot(conn, e.node_id, old, new)
    await conn.execute(
        "UPDATE fig_places SET parent_id = $2 WHERE id = $1", e.node_id, e.new_parent_id
    )


async def reroot(conn: Any, node_id: str, old: str, new: str) -> None:
    """Node `node_id`'s subtree from path `old` to `new`: its own rows (which hold the whole
    subtree) leave the ancestors it leaves and join the ones it joins."""
    await conn.execute(MOVE_FIG_PLACES, old, new)
    signs = ancestor_signs(old, new)
    if signs:
        await conn.execute(TRANSFER, node_id, list(signs), list(signs.values()))


def ancestor_signs(old: str, new: str) -> dict[str, int]:
    """-1 for each ancestor a node at path `old` leaves by moving to `new`, +1 for each it joins."""
    before, after = set(ids_of(old)[:-1]), set(ids_of(new)[:-1])
    return {**{a: -1 for a in before - after}, **{a: 1 for a in after - before}}


# -- households and people --------------------------------------------------------------------


async def on_household(conn: Any, env: Envelope, e: HouseholdRegistered, batch: Batch) -> None:
    batch.add(e.node_id, batch.day(env), figures.household_registered())


async def on_person_registered(conn: Any, env: Envelope, e: PersonRegistered, batch: Batch) -> None:
    await conn.execute(
        "INSERT INTO fig_persons (id, household_id, residency, tags) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        e.person_id,
        e.household_id,
        e.residency,
        e.tags,
    )
    batch.homes[e.person_id] = e.household_id
    changes = figures.person_stock(e.residency, e.tags)
    batch.add(e.household_id, batch.day(env), changes, f"person:{e.person_id}")


async def _standing_person(conn: Any, person_id: str) -> Any:
    return await conn.fetchrow(
        "SELECT household_id, residency, tags FROM fig_persons WHERE id = $1 AND NOT voided",
        person_id,
    )


async def on_person_moved(conn: Any, env: Envelope, e: PersonMoved, batch: Batch) -> None:
    person = await _standing_person(conn, e.person_id)
    if person is None:
        return
    day, record = batch.day(env), f"person:{e.person_id}"
    batch.add(
        person["household_id"],
        day,
        figures.person_stock(person["residency"], person["tags"], -1),
        record,
    )
    batch.add(
        e.to_household_id, day, figures.person_stock(person["residency"], person["tags"]), record
    )
    await conn.execute(
        "UPDATE fig_persons SET household_id = $2 WHERE id = $1", e.person_id, e.to_household_id
    )
    batch.homes[e.person_id] = e.to_household_id


async def on_residency(conn: Any, env: Envelope, e: PersonResidencyChanged, batch: Batch) -> None:
    person = await _standing_person(conn, e.person_id)
    if person is None:
        return
    changes = figures.residency_changed(person["residency"], e.residency)
    batch.add(person["household_id"], batch.day(env), changes, f"person:{e.person_id}")
    await conn.execute(
        "UPDATE fig_persons SET residency = $2 WHERE id = $1", e.person_id, e.residency
    )


async def on_tags(conn: Any, env: Envelope, e: PersonTagsChanged, batch: Batch) -> None:
    person = await _standing_person(conn, e.person_id)
    if person is None:
        return
    changes = figures.tags_changed(person["tags"], e.tags)
    batch.add(person["household_id"], batch.day(env), changes, f"person:{e.person_id}")
    await conn.execute("UPDATE fig_persons SET tags = $2 WHERE id = $1", e.person_id, e.tags)


async def _void(conn: Any, batch: Batch, record: str) -> None:
    """Take back everything `record` added, at the nodes it added it to."""
    await flush(conn, batch)
    rows = await conn.fetch(
        "DELETE FROM fig_contributions WHERE record = $1 RETURNING node_id, day, metric, value",
        record,
    )
    for r in rows:
        batch.deltas[(r["node_id"], r["day"], r["metric"])] -= r["value"]


async def on_person_voided(conn: Any, env: Envelope, e: PersonVoided, batch: Batch) -> None:
    await _void(conn, batch, f"person:{e.person_id}")
    await conn.execute("UPDATE fig_persons SET voided = true WHERE id = $1", e.person_id)
    batch.homes.pop(e.person_id, None)


# -- visits and inquiries -------------------------------------------------------------------


async def prefetch_visits(conn: Any, batch: Batch, visits: Sequence[HouseholdVisited]) -> None:
    """Which of the batch's visits are stored already and where their households' screened
    stock stands, in two queries (the handlers keep both current)."""
    if not visits:
        return
    await write_visits(conn, batch)
    households = list({e.household_id for e in visits})
    rows = await conn.fetch(
        "SELECT household_id, min(day) AS since FROM fig_visits"
        " WHERE household_id = ANY($1::text[]) AND screened AND NOT voided"
        " GROUP BY household_id",
        households,
    )
    batch.visits.since.update(dict.fromkeys(households))
    batch.visits.since.update({r["household_id"]: r["since"] for r in rows})
    rows = await conn.fetch(
        "SELECT id FROM fig_visits WHERE id = ANY($1::text[])", list({e.visit_id for e in visits})
    )
    batch.visits.known.update(r["id"] for r in rows)


async def write_visits(conn: Any, batch: Batch) -> None:
    rows, batch.visits.unwritten = batch.visits.unwritten, []
    if rows:
        await conn.execute(
            "INSERT INTO fig_visits (id, household_id, day, screened)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::bool[])"
            " ON CONFLICT (id) DO NOTHING",
            *[list(c) for c in zip(*rows, strict=True)],
        )


async def _screened_since(conn: Any, household_id: str) -> date | None:
    value: date | None = await conn.fetchval(
        "SELECT min(day) FROM fig_visits WHERE household_id = $1 AND screened AND NOT voided",
        household_id,
    )
    return value


async def on_visit(conn: Any, env: Envelope, e: HouseholdVisited, batch: Batch) -> None:
    visits = batch.visits
    if e.visit_id in visits.known:
        return
    day, screened = batch.day(env), e.screens_household
    if e.household_id not in visits.since:  # not prefetched: ask now
        await prefetch_visits(conn, batch, [e])
        if e.visit_id in visits.known:
            return
    visits.known.add(e.visit_id)
    visits.unwritten.append((e.visit_id, e.household_id, day, screened))
    batch.add(e.household_id, day, figures.visit_flows(e), f"visit:{e.visit_id}")
    before = visits.since[e.household_id]
    after = min(before, day) if before is not None and screened else (day if screened else before)
    visits.since[e.household_id] = after
    for moved_day, delta in figures.screened_since_moved(before, after):
        batch.add(e.household_id, moved_day, [("stock.screened_households", delta)])


async def on_visit_voided(conn: Any, env: Envelope, e: VisitVoided, batch: Batch) -> None:
    await write_visits(conn, batch)
    before = await _screened_since(conn, e.household_id)
    voided = await conn.fetchval(
        "UPDATE fig_visits SET voided = true WHERE id = $1 AND NOT voided RETURNING household_id",
        e.visit_id,
    )
    if voided is None:
        return
    await _void(conn, batch, f"visit:{e.visit_id}")
    after = await _screened_since(conn, voided)
    batch.visits.since[voided] = after
    for moved_day, delta in figures.screened_since_moved(before, after):
        batch.add(voided, moved_day, [("stock.screened_households", delta)])


async def on_inquiry(conn: Any, env: Envelope, e: PersonInquired, batch: Batch) -> None:
    node = await subject_node(conn, batch, e.subject_id, e.household_id, env.node_id)
    batch.add(node, batch.day(env), figures.inquiry_flows(e))


# -- key persons and watches ----------------------------------------------------------------


async def _subject(conn: Any, subject_id: str) -> Any:
    await conn.execute(
        "INSERT INTO fig_subjects (subject_id) VALUES ($1) ON CONFLICT DO NOTHING", subject_id
    )
    return await conn.fetchrow("SELECT * FROM fig_subjects WHERE subject_id = $1", subject_id)


async def on_flagged(conn: Any, env: Envelope, e: KeyPersonFlagged, batch: Batch) -> None:
    row = await _subject(conn, e.subject_id)
    before = None if row["reasons"] is None else frozenset(row["reasons"])
    node = row["key_node"] or await subject_node(conn, batch, e.subject_id, e.node_id, env.node_id)
    batch.add(node, batch.day(env), figures.key_person_flagged(before, e.reasons))
    await conn.execute(
        "UPDATE fig_subjects SET key_node = $2, reasons = $3 WHERE subject_id = $1",
        e.subject_id,
        node,
        sorted((before or frozenset()) | set(e.reasons)),
    )


async def on_cleared(conn: Any, env: Envelope, e: KeyPersonCleared, batch: Batch) -> None:
    row = await _subject(conn, e.subject_id)
    before = None if row["reasons"] is None else frozenset(row["reasons"])
    batch.add(row["key_node"], batch.day(env), figures.key_person_cleared(before))
    await conn.execute(
        "UPDATE fig_subjects SET key_node = NULL, reasons = NULL WHERE subject_id = $1",
        e.subject_id,
    )


WatchStepOf = Callable[[figures.Watch, Any], figures.WatchStep]


def _watch(step: WatchStepOf) -> Callable[[Any, Envelope, Any, Batch], Awaitable[None]]:
    """A watch transition: its changes count where the watch is held (the subject's node
    when it started), so a stock leaves the node it was added to."""

    async def apply(conn: Any, env: Envelope, e: Any, batch: Batch) -> None:
        row = await _subject(conn, e.subject_id)
        node = row["watch_node"] if row["watch"] is not None else None
        node = node or await subject_node(
            conn, batch, e.subject_id, getattr(e, "node_id", None), env.node_id
        )
        result = step(row["watch"], e)
        batch.add(node, batch.day(env), result.changes)
        await conn.execute(
            "UPDATE fig_subjects SET watch = $2, watch_node = $3 WHERE subject_id = $1",
            e.subject_id,
            result.watch,
            node if result.watch is not None else None,
        )

    return apply


def _flows(
    changes: Callable[[Any], list[figures.Change]],
) -> Callable[[Any, Envelope, Any, Batch], Awaitable[None]]:
    """A subject's flow event: counts at the subject's household (or the event's node)."""

    async def apply(conn: Any, env: Envelope, e: Any, batch: Batch) -> None:
        node = await subject_node(conn, batch, e.subject_id, env.node_id)
        batch.add(node, batch.day(env), changes(e))

    return apply


async def _care_node(conn: Any, batch: Batch, target_id: str, env: Envelope) -> str | None:
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM fig_places WHERE id = $1)", target_id):
        return target_id
    return await subject_node(conn, batch, target_id, env.node_id)


async def on_care_done(conn: Any, env: Envelope, e: CareTaskCompleted, batch: Batch) -> None:
    node = await _care_node(conn, batch, e.target_id, env)
    batch.add(node, batch.day(env), figures.care_done(e))


async def on_care_missed(conn: Any, env: Envelope, e: CareTaskMissed, batch: Batch) -> None:
    node = await _care_node(conn, batch, e.target_id, env)
    batch.add(node, batch.day(env), figures.care_missed())


# -- checkpoints ------------------------------------------------------------------------------


async def on_checkpoint(conn: Any, env: Envelope, e: CheckpointOpened, batch: Batch) -> None:
    await conn.execute(
        "INSERT INTO fig_checkpoints (id, node_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        e.checkpoint_id,
        e.node_id,
    )


async def on_crossing(conn: Any, env: Envelope, e: CrossingRecorded, batch: Batch) -> None:
    batch.add(e.node_id, batch.day(env), figures.crossing_flows(e))


async def on_breach(conn: Any, env: Envelope, e: QuarantineBreachAttempted, batch: Batch) -> None:
    node = await conn.fetchval("SELECT node_id FROM fig_checkpoints WHERE id = $1", e.checkpoint_id)
    batch.add(node or env.node_id, batch.day(env), figures.breach())


Apply = Callable[[Any, Envelope, Any, Batch], Awaitable[None]]

HANDLERS: dict[type[EventPayload], Apply] = {
    NodeMoved: on_node_moved,
    HouseholdRegistered: on_household,
    PersonRegistered: on_person_registered,
    PersonMoved: on_person_moved,
    PersonResidencyChanged: on_residency,
    PersonTagsChanged: on_tags,
    PersonVoided: on_person_voided,
    HouseholdVisited: on_visit,
    VisitVoided: on_visit_voided,
    PersonInquired: on_inquiry,
    KeyPersonFlagged: on_flagged,
    KeyPersonCleared: on_cleared,
    ObservationStarted: _watch(lambda w, e: figures.observation_started(w)),
    QuarantineOrdered: _watch(figures.quarantine_ordered),
    QuarantineExtended: _watch(lambda w, e: figures.quarantine_extended(w)),
    QuarantineReleased: _watch(figures.quarantine_released),
    QuarantineTransferred: _watch(figures.quarantine_transferred),
    TemperatureRecorded: _flows(figures.temperature_flows),
    FollowUpMissed: _flows(lambda e: figures.followup_missed()),
    CareTaskCompleted: on_care_done,
    CareTaskMissed: on_care_missed,
    SampleCollected: _flows(figures.sample_collected),
    TestResulted: _flows(figures.result_flows),
    VaccineDoseGiven: _flows(figures.dose_given),
    CheckpointOpened: on_checkpoint,
    CrossingRecorded: on_crossing,
    QuarantineBreachAttempted: on_breach,
}


class FiguresProjection:
    """The `figures` consumer's handler: `(conn, events)` inside the consumer's transaction."""

    def __init__(self, zone: tzinfo | None = None) -> None:
        self._zone = zone

    @cached_property
    def zone(self) -> tzinfo:
        return self._zone or ReportingSettings().zone

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        batch = Batch(self.zone)
        decoded = [(env, decode(env)) for env in events]
        await prefetch_homes(conn, batch, [p for _, p in decoded])
        await prefetch_visits(conn, batch, [p for _, p in decoded if type(p) is HouseholdVisited])
        created: list[NodeCreated] = []
        for env, payload in decoded:
            if type(payload) is NodeCreated:
                created.append(payload)
                continue
            if created:
                await on_nodes_created(conn, created, batch)
                created = []
            apply = HANDLERS.get(type(payload))
            if apply is not None:
                await apply(conn, env, payload, batch)
        if created:
            await on_nodes_created(conn, created, batch)
        await write_visits(conn, batch)
        await flush(conn, batch)


FIGURES = FiguresProjection()
