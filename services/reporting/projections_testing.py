"""The `testing` read model: per round and node, persons due / sampled / resulted / positive,
and per node and day, persons and persons with each vaccine dose — each for the node and
everything under it, so a query is a key lookup.

State (this consumer's own, so a move and the facts under it apply in one order): its copy
of the place tree (`testing_places`), households' doors, persons with masked values, their
residences (`testing_residences`, one per registration or move), rounds, samples with
results, doses. Who counts where is `services.reporting.testing`.

Each batch first records the facts, noting whose figures they may change (a person, or every
person under a node that was created or moved, or under a round's place). At the end of the
batch those persons are recomputed from their facts: the rows they contribute
(`round_persons`, `vaccination_contributions`) are replaced, and the difference is spread
over each household's ancestors with one upsert per table. A node move first carries the
moved node's roll-up rows from its old ancestors to its new ones. So figures equal the sum of
the stored contributions over the tree as it is, whatever order the topics interleave in, and
a replayed or duplicated event (dropped by the consumer base anyway) changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from functools import cached_property
from typing import Any

from services.reporting import testing
from services.reporting.config import ReportingSettings
from services.reporting.projections_figures import ancestor_signs, ids_of
from shared.contracts import EventPayload
from shared.contracts.published import decode
from shared.contracts.registry import (
    HouseholdRegistered,
    NodeCreated,
    NodeMoved,
    PersonContactChanged,
    PersonMoved,
    PersonRegistered,
    PersonVoided,
)
from shared.contracts.screening import (
    SampleCollected,
    TestResulted,
    TestRoundStarted,
    VaccineDoseGiven,
)
from shared.envelope import Envelope
from shared.places import move_subtree_sql, stale_children_sql

RoundKey = tuple[str, str]  # (round_id, node_id)
DayKey = tuple[str, date, str]  # (node_id, day, metric)

UPSERT_ROUND_FIGURES = """
INSERT INTO round_figures (round_id, node_id, due, sampled, resulted, positive)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[])
ORDER BY 1, 2
ON CONFLICT (round_id, node_id) DO UPDATE SET
    due = round_figures.due + EXCLUDED.due,
    sampled = round_figures.sampled + EXCLUDED.sampled,
    resulted = round_figures.resulted + EXCLUDED.resulted,
    positive = round_figures.positive + EXCLUDED.positive
"""

UPSERT_VACCINATION = """
INSERT INTO vaccination_node_days (node_id, day, metric, value)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[]) ORDER BY 1, 2, 3
ON CONFLICT (node_id, day, metric)
DO UPDATE SET value = vaccination_node_days.value + EXCLUDED.value
"""

# the moved node's rows, added to each (ancestor, sign): -1 for the old, +1 for the new ones
TRANSFER_ROUND_FIGURES = """
INSERT INTO round_figures (round_id, node_id, due, sampled, resulted, positive)
SELECT m.round_id, a.node_id, m.due * a.sign, m.sampled * a.sign, m.resulted * a.sign,
       m.positive * a.sign
FROM round_figures m CROSS JOIN unnest($2::text[], $3::int[]) AS a(node_id, sign)
WHERE m.node_id = $1
ORDER BY 1, 2
ON CONFLICT (round_id, node_id) DO UPDATE SET
    due = round_figures.due + EXCLUDED.due,
    sampled = round_figures.sampled + EXCLUDED.sampled,
    resulted = round_figures.resulted + EXCLUDED.resulted,
    positive = round_figures.positive + EXCLUDED.positive
"""

TRANSFER_VACCINATION = """
INSERT INTO vaccination_node_days (node_id, day, metric, value)
SELECT a.node_id, m.day, m.metric, m.value * a.sign
FROM vaccination_node_days m CROSS JOIN unnest($2::text[], $3::int[]) AS a(node_id, sign)
WHERE m.node_id = $1
ORDER BY 1, 2, 3
ON CONFLICT (node_id, day, metric)
DO UPDATE SET value = vaccination_node_days.value + EXCLUDED.value
"""

MOVE_PLACES = move_subtree_sql("testing_places")
STALE_CHILDREN = stale_children_sql("testing_places")

PERSONS_UNDER = """
SELECT DISTINCT r.person_id FROM testing_residences r
JOIN testing_places p ON p.id = r.household_id
WHERE p.path <@ (SELECT path FROM testing_places WHERE id = $1)
"""

# the household paths contain the node's label wherever the node itself sits (or is unknown)
PERSONS_UNDER_LABEL = """
SELECT DISTINCT r.person_id FROM testing_residences r
JOIN testing_places p ON p.id = r.household_id
WHERE p.path ~ ('*.' || $1 || '.*')::lquery
"""


def label_of(node_id: str) -> str:
    return node_id.replace("-", "_")


@dataclass
class Batch:
    """Whose figures the batch's facts may have changed, and the rows of households, persons
    and residences not written yet (written in one statement each before anything reads)."""

    persons: set[str] = field(default_factory=set)
    households: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    registered: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    residences: list[tuple[str, int, str, datetime]] = field(default_factory=list)


async def write_facts(conn: Any, batch: Batch) -> None:
    if batch.households:
        await conn.execute(
            "INSERT INTO testing_households (id, door_number, address)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (id) DO NOTHING",
            *_columns(batch.households, 3),
        )
        batch.households = []
    if batch.registered:
        await conn.execute(
            "INSERT INTO testing_persons (id, name_masked, document_masked)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (id) DO NOTHING",
            *_columns(batch.registered, 3),
        )
        batch.registered = []
    if batch.residences:
        await conn.execute(
            "INSERT INTO testing_residences (person_id, version, household_id, since)"
            " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT DO NOTHING",
            *_columns(batch.residences, 4),
        )
        batch.residences = []


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


# -- facts: the place tree ---------------------------------------------------------------------


async def on_nodes_created(conn: Any, created: Sequence[NodeCreated], batch: Batch) -> None:
    """A run of `NodeCreated`: the new rows in one statement (a node takes its parent's
    current path when the parent is known, else the event's); whoever lives in them."""
    asked = {e.node_id for e in created} | {e.parent_id for e in created if e.parent_id}
    rows = await conn.fetch(
        "SELECT id, path::text AS path FROM testing_places WHERE id = ANY($1::text[])",
        list(asked),
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
    if new:
        await conn.execute(
            "INSERT INTO testing_places (id, parent_id, path)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::ltree[])"
            " ON CONFLICT (id) DO NOTHING",
            *_columns(new, 3),
        )
    # children that came first under a path an ancestor's move has changed since
    for node_id, _, _ in new:
        for child in await conn.fetch(STALE_CHILDREN, node_id):
            await reroot(conn, child["id"], child["old"], child["new"], batch)
    rows = await conn.fetch(
        "SELECT DISTINCT person_id FROM testing_residences WHERE household_id = ANY($1::text[])",
        list({e.node_id for e in created}),
    )
    batch.persons.update(r["person_id"] for r in rows)


async def on_node_moved(conn: Any, env: Envelope, e: NodeMoved, batch: Batch) -> None:
    old = await conn.fetchval("SELECT path::text FROM testing_places WHERE id = $1", e.node_id)
    old = old or e.old_path
    parent = await conn.fetchval(
        "SELECT path::text FROM testing_places WHERE id = $1", e.new_parent_id
    )
    new = f"{parent}.{old.rsplit('.', 1)[-1]}" if parent else e.new_path
    await reroot(conn, e.node_id, old, new, batch)
    await conn.execute(
        "UPDATE testing_places SET parent_id = $2 WHERE id = $1", e.node_id, e.new_parent_id
    )


async def reroot(conn: Any, node_id: str, old: str, new: str, batch: Batch) -> None:
    """Node `node_id`'s subtree from path `old` to `new`, its figures along with it."""
    await conn.execute(MOVE_PLACES, old, new)
    signs = ancestor_signs(old, new)
    if signs:
        ancestors, values = list(signs), list(signs.values())
        await conn.execute(TRANSFER_ROUND_FIGURES, node_id, ancestors, values)
        await conn.execute(TRANSFER_VACCINATION, node_id, ancestors, values)
    # who is due in a round over an old or a new ancestor may change
    rows = await conn.fetch(PERSONS_UNDER, node_id)
    batch.persons.update(r["person_id"] for r in rows)


# -- facts: households and persons ---------------------------------------------------------------


async def on_household(conn: Any, env: Envelope, e: HouseholdRegistered, batch: Batch) -> None:
    batch.households.append((e.household_id, e.door_number, e.address))


async def on_person_registered(conn: Any, env: Envelope, e: PersonRegistered, batch: Batch) -> None:
    batch.registered.append((e.person_id, e.name_masked, e.document_masked))
    batch.residences.append((e.person_id, env.version, e.household_id, env.occurred_at))
    batch.persons.add(e.person_id)


async def on_person_moved(conn: Any, env: Envelope, e: PersonMoved, batch: Batch) -> None:
    batch.residences.append((e.person_id, env.version, e.to_household_id, env.occurred_at))
    batch.persons.add(e.person_id)


async def on_contact(conn: Any, env: Envelope, e: PersonContactChanged, batch: Batch) -> None:
    await conn.execute(
        "UPDATE testing_persons SET name_masked = $2 WHERE id = $1", e.person_id, e.name_masked
    )


async def on_person_voided(conn: Any, env: Envelope, e: PersonVoided, batch: Batch) -> None:
    await conn.execute("UPDATE testing_persons SET voided = true WHERE id = $1", e.person_id)
    batch.persons.add(e.person_id)


# -- facts: rounds, samples, doses ---------------------------------------------------------------


async def on_round(conn: Any, env: Envelope, e: TestRoundStarted, batch: Batch) -> None:
    await conn.execute(
        "INSERT INTO testing_rounds (round_id, node_id, number, starts_on, ends_on)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        e.round_id,
        e.node_id,
        e.number,
        e.starts_on,
        e.ends_on,
    )
    rows = await conn.fetch(PERSONS_UNDER_LABEL, label_of(e.node_id))
    batch.persons.update(r["person_id"] for r in rows)
    rows = await conn.fetch(
        "SELECT DISTINCT person_id FROM testing_samples WHERE round_id = $1", e.round_id
    )
    batch.persons.update(r["person_id"] for r in rows)


async def on_sample(conn: Any, env: Envelope, e: SampleCollected, batch: Batch) -> None:
    if e.round_id is None or e.subject_id.startswith("h:"):
        return  # only samples of a round count in a round's figures
    await conn.execute(
        "INSERT INTO testing_samples (sample_id, round_id, person_id, collected_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        e.sample_id,
        e.round_id,
        e.subject_id,
        env.occurred_at,
    )
    batch.persons.add(e.subject_id)


async def on_result(conn: Any, env: Envelope, e: TestResulted, batch: Batch) -> None:
    person = await conn.fetchval(
        "UPDATE testing_samples SET result = $2 WHERE sample_id = $1 RETURNING person_id",
        e.sample_id,
        e.result,
    )
    if person is not None:
        batch.persons.add(person)


class DoseDay:
    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    async def __call__(self, conn: Any, env: Envelope, e: VaccineDoseGiven, batch: Batch) -> None:
        if e.subject_id.startswith("h:"):
            return
        await conn.execute(
            "INSERT INTO vaccination_doses (dose_id, person_id, dose_number, day)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            e.dose_id,
            e.subject_id,
            e.dose_number,
            env.occurred_at.astimezone(self.zone).date(),
        )
        batch.persons.add(e.subject_id)


# -- recomputing persons -------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    persons: list[testing.Person]
    rounds: list[testing.Round]
    lines: dict[str, list[str]]


async def load_facts(conn: Any, person_ids: list[str], zone: tzinfo) -> Facts:
    standing = {
        r["id"]: not r["voided"]
        for r in await conn.fetch(
            "SELECT id, voided FROM testing_persons WHERE id = ANY($1::text[])", person_ids
        )
    }
    residences: defaultdict[str, list[testing.Residence]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT person_id, household_id, since FROM testing_residences"
        " WHERE person_id = ANY($1::text[]) ORDER BY person_id, version",
        person_ids,
    ):
        residences[r["person_id"]].append(testing.Residence(r["household_id"], r["since"]))
    samples: defaultdict[str, list[testing.Sample]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT person_id, round_id, collected_at, result FROM testing_samples"
        " WHERE person_id = ANY($1::text[])",
        person_ids,
    ):
        samples[r["person_id"]].append(
            testing.Sample(r["round_id"], r["collected_at"], r["result"])
        )
    doses: defaultdict[str, dict[int, date]] = defaultdict(dict)
    for r in await conn.fetch(
        "SELECT person_id, dose_number, day FROM vaccination_doses"
        " WHERE person_id = ANY($1::text[])",
        person_ids,
    ):
        doses[r["person_id"]][r["dose_number"]] = r["day"]
    homes = {r.household_id for rs in residences.values() for r in rs}
    lines = {
        r["id"]: ids_of(r["path"])
        for r in await conn.fetch(
            "SELECT id, path::text AS path FROM testing_places WHERE id = ANY($1::text[])",
            list(homes),
        )
    }
    nodes = {n for line in lines.values() for n in line}
    sampled_rounds = {s.round_id for ss in samples.values() for s in ss}
    rounds = [
        testing.Round(r["round_id"], r["node_id"], r["starts_on"], r["ends_on"])
        for r in await conn.fetch(
            "SELECT round_id, node_id, starts_on, ends_on FROM testing_rounds"
            " WHERE node_id = ANY($1::text[]) OR round_id = ANY($2::text[])",
            list(nodes),
            list(sampled_rounds),
        )
    ]
    persons = [
        testing.Person(
            p,
            standing.get(p, False),
            testing.ordered(residences[p]),
            samples[p],
            doses[p],
        )
        for p in person_ids
    ]
    return Facts(persons, rounds, lines)


@dataclass
class Deltas:
    rounds: defaultdict[RoundKey, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0])
    )
    days: defaultdict[DayKey, int] = field(default_factory=lambda: defaultdict(int))

    def add_due(self, due: testing.Due, sign: int) -> None:
        row = self.rounds[(due.round_id, due.household_id)]
        for i, value in enumerate(due.figures()):
            row[i] += sign * value


async def recompute(conn: Any, person_ids: Iterable[str], zone: tzinfo) -> None:
    ids = sorted(set(person_ids))
    if not ids:
        return
    facts = await load_facts(conn, ids, zone)
    deltas = Deltas()
    for r in await conn.fetch(
        "DELETE FROM round_persons WHERE person_id = ANY($1::text[])"
        " RETURNING round_id, person_id, household_id, sampled, resulted, positive",
        ids,
    ):
        deltas.add_due(testing.Due(**dict(r)), -1)
    for r in await conn.fetch(
        "DELETE FROM vaccination_contributions WHERE person_id = ANY($1::text[])"
        " RETURNING node_id, day, metric, value",
        ids,
    ):
        deltas.days[(r["node_id"], r["day"], r["metric"])] -= r["value"]
    dues: list[testing.Due] = []
    contributions: list[tuple[str, str, date, str, int]] = []
    known = frozenset(facts.lines)
    for person in facts.persons:
        for rnd in facts.rounds:
            due = testing.due_in(person, rnd, facts.lines, zone)
            if due is not None:
                dues.append(due)
                deltas.add_due(due, 1)
        for (node, day, metric), value in testing.vaccination_stock(person, known, zone).items():
            contributions.append((person.person_id, node, day, metric, value))
            deltas.days[(node, day, metric)] += value
    await _store(conn, dues, contributions)
    await _spread(conn, deltas, facts.lines)


async def _store(
    conn: Any, dues: Sequence[testing.Due], contributions: Sequence[tuple[Any, ...]]
) -> None:
    if dues:
        await conn.execute(
            "INSERT INTO round_persons (round_id, person_id, household_id, sampled, resulted,"
            " positive) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[],"
            " $5::bool[], $6::bool[])",
            *[list(c) for c in zip(*[_due_row(d) for d in dues], strict=True)],
        )
    if contributions:
        await conn.execute(
            "INSERT INTO vaccination_contributions (person_id, node_id, day, metric, value)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::bigint[])",
            *[list(c) for c in zip(*contributions, strict=True)],
        )


def _due_row(d: testing.Due) -> tuple[Any, ...]:
    return (d.round_id, d.person_id, d.household_id, d.sampled, d.resulted, d.positive)


async def _spread(conn: Any, deltas: Deltas, lines: dict[str, list[str]]) -> None:
    """Each household's differences, added to it and all its ancestors; one upsert each."""
    rounds: defaultdict[RoundKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (round_id, household), values in deltas.rounds.items():
        if not any(values):
            continue
        for node in lines[household]:
            row = rounds[(round_id, node)]
            for i, v in enumerate(values):
                row[i] += v
    round_rows = [(*k, *v) for k, v in rounds.items() if any(v)]  # sorted by the upsert
    if round_rows:
        await conn.execute(UPSERT_ROUND_FIGURES, *[list(c) for c in zip(*round_rows, strict=True)])
    days: defaultdict[DayKey, int] = defaultdict(int)
    for (household, day, metric), value in deltas.days.items():
        if value:
            for node in lines[household]:
                days[(node, day, metric)] += value
    day_rows = [(*k, v) for k, v in days.items() if v]  # sorted by the upsert
    if day_rows:
        await conn.execute(UPSERT_VACCINATION, *[list(c) for c in zip(*day_rows, strict=True)])


# -- the consumer's handler ----------------------------------------------------------------------


class TestingProjection:
    """The `testing` consumer's handler: `(conn, events)` inside the consumer's transaction."""

    __test__ = False  # not a pytest class

    def __init__(self, zone: tzinfo | None = None) -> None:
        self._zone = zone

    @cached_property
    def zone(self) -> tzinfo:
        return self._zone or ReportingSettings().zone

    @cached_property
    def handlers(self) -> dict[type[EventPayload], Any]:
        return {
            NodeMoved: on_node_moved,
            HouseholdRegistered: on_household,
            PersonRegistered: on_person_registered,
            PersonMoved: on_person_moved,
            PersonContactChanged: on_contact,
            PersonVoided: on_person_voided,
            TestRoundStarted: on_round,
            SampleCollected: on_sample,
            TestResulted: on_result,
            VaccineDoseGiven: DoseDay(self.zone),
        }

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        # one writer at a time per schema: a recomputation reads what it replaces
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.testing'))")
        batch = Batch()
        created: list[NodeCreated] = []
        for env in events:
            payload = decode(env)
            if type(payload) is NodeCreated:
                created.append(payload)
                continue
            apply = self.handlers.get(type(payload))
            if apply is None:
                continue
            if created:
                await write_facts(conn, batch)
                await on_nodes_created(conn, created, batch)
                created = []
            if apply not in DEFERRED:
                await write_facts(conn, batch)
            await apply(conn, env, payload, batch)
        if created:
            await write_facts(conn, batch)
            await on_nodes_created(conn, created, batch)
        await write_facts(conn, batch)
        await recompute(conn, batch.persons, self.zone)


# handlers that only add rows `write_facts` writes: nothing they need is read before it runs
DEFERRED = frozenset({on_household, on_person_registered, on_person_moved})


TESTING = TestingProjection()
