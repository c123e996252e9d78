"""Waiting until services have applied what a client sent them, from their `GET /v1/lag`,
never from their tables: what an outside client can do too.

A report says `caught_up` when, as the service measured, everything it recorded was on Kafka
(relay backlog 0) and each of its consumers had applied what was on its topics then. One hop
is two reports in turn: the writer's, then the reader's (a quarantine ordered in screening is
seen by the gates once screening and then checkpoint say caught up) — `caught_up`.

Services that react to each other (a gate's referral becomes a key person, which reporting
counts) need a fixed point — `settled`: every service caught up, and nothing published or
applied anywhere since the round before (relays' `published`, consumers' `committed`). Then
no event was recorded between the two rounds, and every event recorded before them, reactions
included, has been applied by every consumer. A clock (the missed-slot scheduler) may record
more later; that is news after the fixed point.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from scenario.http import ScenarioError

Report = dict[str, Any]
INTERVAL = 0.25  # seconds between two rounds of reports


async def lag(client: httpx.AsyncClient, headers: Mapping[str, str]) -> Report:
    r = await client.get("/v1/lag", headers=dict(headers))
    if r.status_code != 200:
        raise ScenarioError(f"GET /v1/lag: {r.status_code} {r.text[:500]}")
    report: Report = r.json()
    return report


def behind(report: Report) -> str:
    """Why a report is not caught up, in a few words."""
    why = []
    relay = report.get("relay")
    if relay and relay["backlog"]:
        why.append(f"{relay['backlog']} events not on Kafka yet")
    if report.get("kafka_error"):
        why.append(f"Kafka not asked: {report['kafka_error']}")
    for c in report["consumers"]:
        if not c["caught_up"]:
            dead = f", {c['dead_letters']} open dead letters" if c["dead_letters"] else ""
            why.append(f"{c['consumer']} lag {c['lag']}{dead}")
    return f"{report['service']}: {'; '.join(why) or 'caught up'}"


def positions(reports: Mapping[str, Report]) -> dict[tuple[str, ...], int]:
    """What has moved if anything moved: each relay's published count and each consumer's
    committed offsets."""
    found: dict[tuple[str, ...], int] = {}
    for service, report in reports.items():
        if report["relay"] is not None:
            found[(service, "published")] = report["relay"]["published"]
        for c in report["consumers"]:
            for p in c["partitions"]:
                found[(service, c["consumer"], p["topic"], str(p["partition"]))] = p["committed"]
    return found


async def caught_up(
    client: httpx.AsyncClient,
    service: str,
    *,
    headers: Mapping[str, str],
    timeout: float = 60.0,
) -> Report:
    """The first report of `service` that says it caught up (ScenarioError after `timeout`
    seconds, saying what it is still behind on)."""
    deadline = time.monotonic() + timeout
    while True:
        report = await lag(client, headers)
        if report["caught_up"]:
            return report
        if time.monotonic() > deadline:
            raise ScenarioError(f"{service} did not catch up in {timeout:g}s: {behind(report)}")
        await asyncio.sleep(INTERVAL)


async def settled(
    clients: Mapping[str, httpx.AsyncClient],
    *,
    headers: Mapping[str, str],
    timeout: float = 60.0,
) -> dict[str, Report]:
    """The reports of every service once they are at a fixed point (see the module): all
    caught up, nothing moved since the round before."""
    deadline = time.monotonic() + timeout
    before: dict[tuple[str, ...], int] | None = None
    while True:
        answers = await asyncio.gather(*(lag(c, headers) for c in clients.values()))
        reports = dict(zip(clients, answers, strict=True))
        now = positions(reports)
        if all(r["caught_up"] for r in reports.values()) and now == before:
            return reports
        if time.monotonic() > deadline:
            late = [behind(r) for r in reports.values() if not r["caught_up"]]
            raise ScenarioError(
                f"services did not settle in {timeout:g}s: "
                + ("; ".join(late) or "still publishing or applying")
            )
        before = now
        await asyncio.sleep(INTERVAL)
