"""Responsibility chains (包保) per party: what a party answers for on a day, reduced to what
its figures count (`api/party_figures` adds the figures up).

What counts. A party's *cover* on a day is the union of its assignments valid that day in
the chain's instances valid that day. Node targets are reduced to a minimal cover (a node
under another covered node is dropped: its figures are inside its ancestor's) and the figures
are the sum of the `node_day_metrics` key lookups of what remains, the very figures of
`GET /v1/nodes/{id}/summary`. A target several parties share (多对一) is one node of a tier's
cover, so a roll-up over a tier's parties counts it once.

Persons (a tier covering persons, e.g. 医护人员包人): a covered person adds to `people`, the
distinct persons answered for that day and how many of them are on the key-person list at the
day's end. People are never added to the node figures: a household's figures include its
other members, who are not that person's. A voided person is not counted; a person who moves
is answered for, and placed in the tree, where they live now.

Like every figure of reporting, covers follow the place tree as it is now: a moved subtree
takes its figures into whichever party covers it after the move.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.contracts.registry import ChainTier

# -- what a party covers -------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    instance_id: str
    template_id: str
    root_node_id: str
    root_path: str | None
    valid_from: date
    valid_to: date | None
    tiers: tuple[ChainTier, ...]

    def tier_name(self, level: int) -> str:
        return next((t.name for t in self.tiers if t.level == level), str(level))


@dataclass(frozen=True)
class Target:
    """One assignment valid on the day, placed in the tree: a node, or a person through the
    household they live in (`place_id`, `path` None while reporting does not know it)."""

    instance_id: str
    level: int
    party_id: str
    target_type: Literal["node", "person"]
    target_id: str
    kind: str | None
    name: str | None
    place_id: str | None
    path: str | None


INSTANCES = """
SELECT i.instance_id, i.template_id, i.root_node_id, r.path::text AS root_path, i.valid_from,
       i.valid_to, t.tiers
FROM chain_instances i
JOIN chain_templates t ON t.template_id = i.template_id
LEFT JOIN places r ON r.id = i.root_node_id
WHERE (i.instance_id = $1 OR i.template_id = $1)
  AND i.valid_from <= $2 AND (i.valid_to IS NULL OR $2 <= i.valid_to)
ORDER BY i.instance_id
"""

TARGETS = """
SELECT a.instance_id, a.level, a.party_id, a.target_type, a.target_id,
       CASE WHEN a.target_type = 'node' THEN n.kind ELSE 'person' END AS kind,
       CASE WHEN a.target_type = 'node' THEN n.name ELSE cp.name_masked END AS name,
       CASE WHEN a.target_type = 'node' THEN a.target_id ELSE cp.household_id END AS place_id,
       n.path::text AS path
FROM chain_assignments a
LEFT JOIN chain_persons cp ON a.target_type = 'person' AND cp.person_id = a.target_id
LEFT JOIN places n
       ON n.id = CASE WHEN a.target_type = 'node' THEN a.target_id ELSE cp.household_id END
WHERE a.instance_id = ANY($1::text[])
  AND a.valid_from <= $2 AND (a.valid_to IS NULL OR $2 <= a.valid_to)
  AND ($3::text IS NULL OR a.party_id = $3)
  AND cp.voided IS NOT TRUE
ORDER BY a.level, a.party_id, n.path, a.target_id
"""


async def chain_known(conn: Any, chain: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM chain_templates WHERE template_id = $1)"
            " OR EXISTS (SELECT 1 FROM chain_instances WHERE instance_id = $1)",
            chain,
        )
    )


async def party_known(conn: Any, party_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM chain_parties WHERE party_id = $1)"
            " OR EXISTS (SELECT 1 FROM chain_assignments WHERE party_id = $1)",
            party_id,
        )
    )


async def instances(conn: Any, chain: str, day: date) -> list[Instance]:
    """Instances of `chain` (a template or an instance id) valid on `day`."""
    return [
        Instance(
            instance_id=r["instance_id"],
            template_id=r["template_id"],
            root_node_id=r["root_node_id"],
            root_path=r["root_path"],
            valid_from=r["valid_from"],
            valid_to=r["valid_to"],
            tiers=tuple(
                sorted((ChainTier.model_validate(t) for t in r["tiers"]), key=lambda t: t.level)
            ),
        )
        for r in await conn.fetch(INSTANCES, chain, day)
    ]


async def targets(
    conn: Any, of: Sequence[Instance], day: date, party_id: str | None = None
) -> list[Target]:
    """Assignments valid on `day` in the given instances (of one party, or of all)."""
    if not of:
        return []
    rows = await conn.fetch(TARGETS, [i.instance_id for i in of], day, party_id)
    return [Target(**dict(r)) for r in rows]


async def key_persons_at(conn: Any, person_ids: Iterable[str], end_of_day: datetime) -> set[str]:
    """Which of the persons are on the key-person list at the end of the day."""
    ids = sorted(set(person_ids))
    if not ids:
        return set()
    rows = await conn.fetch(
        "SELECT subject_id FROM chain_key_persons WHERE subject_id = ANY($1::text[])"
        " AND flagged_at < $2 AND (cleared_at IS NULL OR cleared_at >= $2)",
        ids,
        end_of_day,
    )
    return {r["subject_id"] for r in rows}


async def places_outside(conn: Any, place_ids: Iterable[str], scope: Sequence[str]) -> list[str]:
    """The places that lie in no subtree of `scope` (or that reporting does not know)."""
    ids = sorted(set(place_ids))
    inside_rows = await conn.fetch(
        "SELECT n.id FROM places n WHERE n.id = ANY($1::text[]) AND EXISTS ("
        " SELECT 1 FROM places s WHERE s.id = ANY($2::text[]) AND n.path <@ s.path)",
        ids,
        list(scope),
    )
    return sorted(set(ids) - {r["id"] for r in inside_rows})


async def home_node(conn: Any, party_id: str) -> str | None:
    """Where the party belongs, as registered."""
    node: str | None = await conn.fetchval(
        "SELECT node_id FROM chain_parties WHERE party_id = $1", party_id
    )
    return node


# -- cover arithmetic (pure) ------------------------------------------------------------------


def inside(path: str, root: str) -> bool:
    """Is `path` the node at `root` or under it (ltree `<@`)?"""
    return path == root or path.startswith(root + ".")


def minimal_cover(nodes: Iterable[tuple[str, str]]) -> list[str]:
    """The ids of the (id, path) nodes that lie under no other of them, in tree order:
    summing their figures counts everything covered exactly once."""
    kept: set[str] = set()
    chosen: list[tuple[str, str]] = []
    for node_id, path in sorted(set(nodes), key=lambda n: (n[1].count("."), n[1])):
        labels = path.split(".")
        if any(".".join(labels[:i]) in kept for i in range(1, len(labels) + 1)):
            continue
        kept.add(path)
        chosen.append((path, node_id))
    return [node_id for _, node_id in sorted(chosen)]


def counted_node(t: Target, within: tuple[str, str] | None) -> tuple[str, str] | None:
    """The (id, path) whose figures a node target contributes: the target itself, or within a
    place asked about, the part of the target inside it (the place, when the target lies
    above it; nothing when the target lies elsewhere)."""
    if t.target_type != "node" or t.path is None or t.place_id is None:
        return None
    if within is None or inside(t.path, within[1]):
        return (t.place_id, t.path)
    if inside(within[1], t.path):
        return within
    return None


def counted_person(t: Target, within: tuple[str, str] | None) -> bool:
    if t.target_type != "person":
        return False
    return within is None or (t.path is not None and inside(t.path, within[1]))


def relevant(t: Target, within: tuple[str, str]) -> bool:
    """Does the target bear on the place: in, under or above it?"""
    return counted_node(t, within) is not None or counted_person(t, within)


# -- what a cover counts ----------------------------------------------------------------------


class People(BaseModel):
    """Persons answered for directly (a tier covering persons); not part of the node figures."""

    persons: int = Field(0, description="distinct persons, voided ones left out", examples=[3])
    key_persons: int = Field(
        0, description="of them, on the key-person list at the day's end", examples=[1]
    )


@dataclass(frozen=True)
class Cover:
    """What a set of targets counts: the minimal cover of nodes and the persons."""

    nodes: list[str]
    persons: set[str]

    @staticmethod
    def of(ts: Iterable[Target], within: tuple[str, str] | None = None) -> Cover:
        ts = list(ts)
        nodes = [n for t in ts if (n := counted_node(t, within)) is not None]
        persons = {t.target_id for t in ts if counted_person(t, within)}
        return Cover(minimal_cover(nodes), persons)

    def people(self, key: set[str]) -> People:
        return People(persons=len(self.persons), key_persons=len(self.persons & key))
