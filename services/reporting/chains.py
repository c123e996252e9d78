"""Responsibility chains (包保): blind spots — places or key persons inside a chain instance
that no party answers for at some tier on a day.

A target answered for by several parties at one tier (多对一) counts once: the tallies count
distinct targets, never assignments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.contracts.registry import ChainTier


class BlindSpot(BaseModel):
    instance_id: str = Field(examples=["puyang-2020"])
    level: int = Field(examples=[4])
    tier: str = Field(examples=["社区包楼栋"])
    target_type: Literal["node", "person"]
    target_id: str = Field(examples=["b-5"])
    kind: str = Field(description="the node's kind, or `person`", examples=["building"])
    name: str | None = Field(None, description="the place's name or the person's masked name")
    place_id: str = Field(description="the target node, or where the key person is")


class TierCoverage(BaseModel):
    instance_id: str = Field(examples=["puyang-2020"])
    level: int = Field(examples=[4])
    tier: str = Field(examples=["社区包楼栋"])
    targets: int = Field(
        description="distinct places or key persons the tier must cover", examples=[2]
    )
    covered: int = Field(
        description="distinct targets with at least one party (多对一 once)", examples=[1]
    )
    blind: int = Field(examples=[1])


class BlindSpots(BaseModel):
    node_id: str = Field(examples=["puyang"])
    chain: str = Field(examples=["baobao-4"])
    day: date = Field(examples=["2020-01-28"])
    tiers: list[TierCoverage]
    items: list[BlindSpot]


async def instances(conn: Any, chain: str, node_path: str, day: date) -> list[Any]:
    """Instances of `chain` (an instance or template id) valid on `day` whose root lies above
    or below the place asked about."""
    return list(
        await conn.fetch(
            """
            SELECT i.instance_id, i.template_id, r.path::text AS root_path, t.tiers
            FROM chain_instances i
            JOIN chain_templates t ON t.template_id = i.template_id
            JOIN places r ON r.id = i.root_node_id
            WHERE (i.instance_id = $1 OR i.template_id = $1)
              AND i.valid_from <= $3 AND (i.valid_to IS NULL OR $3 <= i.valid_to)
              AND (r.path <@ $2::ltree OR r.path @> $2::ltree)
            ORDER BY i.instance_id
            """,
            chain,
            node_path,
            day,
        )
    )


ACTIVE = "a.valid_from <= $4 AND (a.valid_to IS NULL OR $4 <= a.valid_to)"

NODE_TARGETS = f"""
SELECT p.id AS target_id, p.kind, p.name, p.id AS place_id,
       (SELECT count(DISTINCT a.party_id) FROM chain_assignments a
        WHERE a.instance_id = $5 AND a.level = $6 AND a.target_type = 'node'
          AND a.target_id = p.id AND {ACTIVE}) AS parties
FROM places p
WHERE p.path <@ $1::ltree AND p.path <@ $2::ltree AND NOT p.retired AND p.kind = ANY($3::text[])
ORDER BY p.path
"""

PERSON_TARGETS = f"""
SELECT k.subject_id AS target_id, 'person' AS kind, k.name_masked AS name, p.id AS place_id,
       (SELECT count(DISTINCT a.party_id) FROM chain_assignments a
        WHERE a.instance_id = $5 AND a.level = $6 AND a.target_type = 'person'
          AND a.target_id = k.subject_id AND {ACTIVE}) AS parties
FROM chain_key_persons k
JOIN places p ON p.id = k.node_id
WHERE p.path <@ $1::ltree AND p.path <@ $2::ltree
  AND k.flagged_at < $3 AND (k.cleared_at IS NULL OR k.cleared_at >= $3)
ORDER BY p.path, k.subject_id
"""


def judge(
    instance_id: str, tier: ChainTier, targets: Sequence[Mapping[str, Any]]
) -> tuple[TierCoverage, list[BlindSpot]]:
    """A tier's coverage from its targets, each with the number of distinct parties answering
    for it on the day: a target with none is a blind spot; with several it counts once."""
    blind = [t for t in targets if t["parties"] == 0]
    coverage = TierCoverage(
        instance_id=instance_id,
        level=tier.level,
        tier=tier.name,
        targets=len(targets),
        covered=len(targets) - len(blind),
        blind=len(blind),
    )
    return coverage, [
        BlindSpot(
            instance_id=instance_id,
            level=tier.level,
            tier=tier.name,
            target_type=tier.covers,
            target_id=t["target_id"],
            kind=t["kind"],
            name=t["name"],
            place_id=t["place_id"],
        )
        for t in blind
    ]


async def blind_spots(
    conn: Any, node_id: str, node_path: str, chain: str, day: date, end_of_day: datetime
) -> BlindSpots:
    """Blind spots on `day` of every instance of `chain` over the place's subtree (and the
    instance's root), tier by tier from the top; a key person counts when on the list at the
    end of the day."""
    tiers: list[TierCoverage] = []
    items: list[BlindSpot] = []
    for inst in await instances(conn, chain, node_path, day):
        chain_tiers = [ChainTier.model_validate(raw) for raw in inst["tiers"]]
        for tier in sorted(chain_tiers, key=lambda t: t.level):
            if tier.covers == "node":
                third: Any = tier.node_kinds
                sql = NODE_TARGETS
            else:
                third, sql = end_of_day, PERSON_TARGETS
            rows = await conn.fetch(
                sql, inst["root_path"], node_path, third, day, inst["instance_id"], tier.level
            )
            coverage, blind = judge(inst["instance_id"], tier, rows)
            tiers.append(coverage)
            items.extend(blind)
    return BlindSpots(node_id=node_id, chain=chain, day=day, tiers=tiers, items=items)
