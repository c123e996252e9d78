"""Reporting answers per responsibility-chain party (包保): a party's figures on a day, and a
place's chain tree from the top tier down with each tier's parties and headline figures.

The figures are those of `GET /v1/nodes/{id}/summary` (`figures_of`), added up over a
minimal cover (`party_covers`): a node under another covered node, or a target several
parties share (多对一), counts once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.reporting.api.figures import CORE_STOCKS, Figures, figures_of
from services.reporting.figures import coverage_pct
from services.reporting.party_covers import (
    Cover,
    Instance,
    People,
    Target,
    inside,
    instances,
    key_persons_at,
    relevant,
    targets,
)
from shared.contracts.registry import ChainTier

# -- answers ----------------------------------------------------------------------------------


class Covered(BaseModel):
    instance_id: str = Field(examples=["puyang-2020"])
    level: int = Field(examples=[4])
    tier: str = Field(examples=["社区包楼栋"])
    target_type: Literal["node", "person"]
    target_id: str = Field(examples=["b-3"])
    kind: str | None = Field(
        None, description="the node's kind, or `person`", examples=["building"]
    )
    name: str | None = Field(None, description="the place's name or the person's masked name")
    place_id: str | None = Field(
        None, description="the node, or the household the person lives in", examples=["b-3"]
    )


class PartyInfo(BaseModel):
    party_id: str = Field(examples=["p-community"])
    kind: str | None = Field(None, examples=["unit"])
    name: str | None = Field(None, description="public name or title", examples=["一社区居委会"])
    role: str | None = Field(None, examples=["community"])
    node_id: str | None = Field(None, description="where the party belongs", examples=["c-1"])


class PartySummary(Figures):
    """The figures of a node summary over what a party covers on a day."""

    chain: str = Field(description="the template or instance asked about", examples=["baobao-4"])
    party: PartyInfo
    covers: list[Covered] = Field(description="the party's assignments valid on the day")
    counted: list[str] = Field(
        description="the nodes whose figures are summed: the covered nodes under no other",
        examples=[["b-3", "b-5"]],
    )
    people: People


class Headline(BaseModel):
    """The core of the figures: stocks at the day's end, the day's visits, and people."""

    households: int = Field(examples=[4])
    persons: int = Field(examples=[9])
    screened_households: int = Field(examples=[2])
    coverage_pct: float | None = Field(examples=[50.0])
    key_persons: int = Field(examples=[1])
    under_observation: int = Field(examples=[0])
    under_quarantine: int = Field(examples=[1])
    visits: int = Field(description="household visits on the day", examples=[3])
    people: People


class TreeParty(BaseModel):
    party: PartyInfo
    covers: list[Covered]
    counted: list[str] = Field(description="the nodes whose figures make the headline")
    headline: Headline


class TreeTier(BaseModel):
    level: int = Field(examples=[4])
    name: str = Field(examples=["社区包楼栋"])
    party_role: str = Field(examples=["community"])
    covers: Literal["node", "person"]
    parties: list[TreeParty]
    counted: list[str] = Field(description="the tier's cover: every party's, each node once")
    total: Headline = Field(description="over the tier's cover: a shared target (多对一) once")


class TreeInstance(BaseModel):
    instance_id: str = Field(examples=["puyang-2020"])
    template_id: str = Field(examples=["baobao-4"])
    root_node_id: str = Field(examples=["puyang"])
    valid_from: date
    valid_to: date | None
    tiers: list[TreeTier] = Field(description="from the top tier (level 1) down")


class ChainTree(BaseModel):
    chain: str = Field(examples=["baobao-4"])
    node_id: str = Field(examples=["c-1"])
    date: date
    instances: list[TreeInstance] = Field(
        description="the chain's instances valid on the day rooted at or above the place"
    )


def total(day: date, parts: Iterable[Figures]) -> Figures:
    """The figures of disjoint subtrees added up (coverage recomputed from the sums)."""
    flows: defaultdict[str, int] = defaultdict(int)
    stocks: defaultdict[str, int] = defaultdict(int, dict.fromkeys(CORE_STOCKS, 0))
    for part in parts:
        for metric, value in part.flows.items():
            flows[metric] += value
        for metric, value in part.stocks.items():
            stocks[metric] += value
    kept = {k: v for k, v in stocks.items() if v or k in CORE_STOCKS}
    return Figures(
        date=day,
        flows=dict(sorted((k, v) for k, v in flows.items() if v)),
        stocks=dict(sorted(kept.items())),
        coverage_pct=coverage_pct(kept),
    )


def figures_over(cover: Cover, day: date, by_node: Mapping[str, Figures]) -> Figures:
    return total(day, (by_node[n] for n in cover.nodes))


def headline(figs: Figures, people: People) -> Headline:
    s = figs.stocks
    return Headline(
        households=s["households"],
        persons=s["persons"],
        screened_households=s["screened_households"],
        coverage_pct=figs.coverage_pct,
        key_persons=s["key_persons"],
        under_observation=s["under_observation"],
        under_quarantine=s["under_quarantine"],
        visits=figs.flows.get("visits", 0),
        people=people,
    )


def covered(t: Target, by_id: Mapping[str, Instance]) -> Covered:
    return Covered(
        instance_id=t.instance_id,
        level=t.level,
        tier=by_id[t.instance_id].tier_name(t.level),
        target_type=t.target_type,
        target_id=t.target_id,
        kind=t.kind,
        name=t.name,
        place_id=t.place_id,
    )


async def party_infos(conn: Any, party_ids: Iterable[str]) -> dict[str, PartyInfo]:
    ids = sorted(set(party_ids))
    rows = await conn.fetch(
        "SELECT party_id, kind, name, role, node_id FROM chain_parties"
        " WHERE party_id = ANY($1::text[])",
        ids,
    )
    known = {r["party_id"]: PartyInfo(**dict(r)) for r in rows}
    return {p: known.get(p, PartyInfo(party_id=p)) for p in ids}


async def party_summary(
    conn: Any,
    chain: str,
    party_id: str,
    of: Sequence[Instance],
    ts: Sequence[Target],
    day: date,
    end_of_day: datetime,
) -> PartySummary:
    """The figures over the party's targets `ts` (its assignments valid on `day` in `of`)."""
    cover = Cover.of(ts)
    by_node = await figures_of(conn, cover.nodes, day)
    key = await key_persons_at(conn, cover.persons, end_of_day)
    by_id = {i.instance_id: i for i in of}
    info = (await party_infos(conn, [party_id]))[party_id]
    return PartySummary(
        **figures_over(cover, day, by_node).model_dump(),
        chain=chain,
        party=info,
        covers=[covered(t, by_id) for t in ts],
        counted=cover.nodes,
        people=cover.people(key),
    )


async def chain_tree(
    conn: Any,
    chain: str,
    node_id: str,
    node_path: str,
    day: date,
    end_of_day: datetime,
) -> ChainTree:
    """The chain's instances over the place, tier by tier from the top, each party with
    what it covers in, under or above the place, and its figures within the place."""
    within = (node_id, node_path)
    over = [
        i
        for i in await instances(conn, chain, day)
        if i.root_path is not None and inside(node_path, i.root_path)
    ]
    ts = [t for t in await targets(conn, over, day) if relevant(t, within)]
    cover_of: dict[tuple[str, int, str | None], Cover] = {}
    grouped: defaultdict[tuple[str, int, str | None], list[Target]] = defaultdict(list)
    for t in ts:
        grouped[(t.instance_id, t.level, t.party_id)].append(t)
        grouped[(t.instance_id, t.level, None)].append(t)
    for group, members in grouped.items():
        cover_of[group] = Cover.of(members, within)
    all_nodes = sorted({n for c in cover_of.values() for n in c.nodes})
    by_node = await figures_of(conn, all_nodes, day)
    key = await key_persons_at(conn, (p for c in cover_of.values() for p in c.persons), end_of_day)
    infos = await party_infos(conn, (t.party_id for t in ts))
    by_id = {i.instance_id: i for i in over}
    empty = Cover([], set())

    def tier_of(inst: Instance, tier: ChainTier) -> TreeTier:
        party_ids = sorted(
            {t.party_id for t in grouped.get((inst.instance_id, tier.level, None), [])}
        )
        parties = []
        for party_id in party_ids:
            mine = grouped[(inst.instance_id, tier.level, party_id)]
            cover = cover_of[(inst.instance_id, tier.level, party_id)]
            parties.append(
                TreeParty(
                    party=infos[party_id],
                    covers=[covered(t, by_id) for t in mine],
                    counted=cover.nodes,
                    headline=headline(figures_over(cover, day, by_node), cover.people(key)),
                )
            )
        whole = cover_of.get((inst.instance_id, tier.level, None), empty)
        return TreeTier(
            level=tier.level,
            name=tier.name,
            party_role=tier.party_role,
            covers=tier.covers,
            parties=parties,
            counted=whole.nodes,
            total=headline(figures_over(whole, day, by_node), whole.people(key)),
        )

    return ChainTree(
        chain=chain,
        node_id=node_id,
        date=day,
        instances=[
            TreeInstance(
                instance_id=i.instance_id,
                template_id=i.template_id,
                root_node_id=i.root_node_id,
                valid_from=i.valid_from,
                valid_to=i.valid_to,
                tiers=[tier_of(i, tier) for tier in i.tiers],
            )
            for i in over
        ],
    )
