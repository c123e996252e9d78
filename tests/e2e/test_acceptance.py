"""Acceptance: the small district scenario, loaded through the public APIs of all four
services on real PostgreSQL and Kafka, shows in reporting exactly the figures the scenario
expects — at district, street, township, community, village and grid level, every simulated
day and the load day, every metric — the chains' blind spots it left on purpose, and the
figures of every party of both chains (a place, a household or a person each).

The expectation (`scenario.truth`) is computed from what the scenario sent and what the
services answered (each gate's decision, the key persons screening flagged, the follow-ups it
saw done and missed), never from reporting. It waits only as an outside client can: on every
service's `GET /v1/lag` (scenario/caught_up.py), never on another service's tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from scenario.calendar import calendar_ending_yesterday
from scenario.driver import drive
from scenario.http import Services, Tokens
from scenario.observed import Observed
from scenario.scale import SMALL
from scenario.truth import OPEN_ENDED_TODAY, Truth, reckon
from scenario.truth_chains import expected_blind_spots, expected_party_summary
from scenario.truth_reports import expected_completeness
from scenario.world import World, build_world
from shared.testing import Infra
from tests.e2e.conftest import Stack, start_stack

SEED = 2020
REPORTING_LEVELS = ("district", "street", "township", "community", "village", "grid")


@pytest.fixture
async def district(infra: Infra) -> AsyncIterator[Stack]:
    """All four services; the missed-slot scheduler scans often so back-dated windows settle."""
    names = ["registry", "screening", "checkpoint", "reporting"]
    async for s in start_stack(infra, names, screening={"scheduler_interval": 0.3}):
        yield s


def comparable(answer: dict[str, Any], day: date, today: date) -> dict[str, Any]:
    flows = answer["flows"]
    if day >= today:
        flows = {m: v for m, v in flows.items() if not m.startswith(OPEN_ENDED_TODAY)}
    return {"flows": flows, "stocks": answer["stocks"], "coverage_pct": answer["coverage_pct"]}


async def mismatches(stack: Stack, world: World, truth: Truth) -> list[str]:
    headers = stack.token("command")
    days = [*world.calendar.dates, world.calendar.today]
    nodes = [p for p in world.district.places if p.kind in REPORTING_LEVELS]
    found = []
    for node in nodes:
        for day in days:
            r = await stack.reporting.get(
                f"/v1/nodes/{node.id}/summary", params={"date": str(day)}, headers=headers
            )
            if r.status_code != 200:
                found.append(f"{node.kind} {node.name} {day}: {r.status_code}")
                continue
            got = comparable(r.json(), day, world.calendar.today)
            want = truth.figures(node.id, day)
            if got != want:
                diff = {
                    k: (got[part].get(k), want[part].get(k))
                    for part in ("flows", "stocks")
                    for k in set(got[part]) | set(want[part])
                    if got[part].get(k) != want[part].get(k)
                }
                if got["coverage_pct"] != want["coverage_pct"]:
                    diff["coverage_pct"] = (got["coverage_pct"], want["coverage_pct"])
                found.append(f"{node.kind} {node.name} {day}: (reporting, truth) {diff}")
    return found


async def blind_spot_mismatches(stack: Stack, world: World, seen: Observed) -> list[str]:
    day = world.calendar.dates[-1]
    want = expected_blind_spots(world, seen, day)
    got: set[tuple[str, int, str]] = set()
    for instance in world.plan.instances:
        r = await stack.reporting.get(
            "/v1/blind-spots",
            params={"node_id": instance.root.id, "chain": instance.id, "date": str(day)},
            headers=stack.token("command"),
        )
        assert r.status_code == 200, r.text
        got |= {(b["instance_id"], b["level"], b["target_id"]) for b in r.json()["items"]}
    return [] if got == want else [f"blind spots: extra {got - want}, missing {want - got}"]


async def completeness_mismatches(stack: Stack, world: World) -> list[str]:
    """Daily reports of grids, communities and villages: late (sent after the deadline),
    zero reports told apart from missing ones, figures rolled up."""
    found = []
    for level in ("grid", "community", "village"):
        for day in world.calendar.dates:
            r = await stack.reporting.get(
                "/v1/daily-reports/completeness",
                params={"node_id": world.district.root.id, "level": level, "date": str(day)},
                headers=stack.token("command"),
            )
            assert r.status_code == 200, r.text
            answer = r.json()
            got = {
                "counts": answer["counts"],
                "rollup": answer["rollup"],
                "zero": sorted(i["node_id"] for i in answer["items"] if i.get("zero")),
            }
            want = expected_completeness(world, level, day)
            if got != want:
                found.append(f"daily reports {level} {day}: {got} != {want}")
    return found


async def party_mismatches(stack: Stack, world: World, seen: Observed, truth: Truth) -> list[str]:
    """Every party of both chains (each answers for one place, household or person), on the
    last simulated day and on the load day."""
    headers = stack.token("command")
    found = []
    for a in world.plan.assignments:
        for day in (world.calendar.dates[-1], world.calendar.today):
            r = await stack.reporting.get(
                f"/v1/chains/{a.instance_id}/parties/{a.party_id}/summary",
                params={"date": str(day)},
                headers=headers,
            )
            if r.status_code != 200:
                found.append(f"party {a.party_id} {day}: {r.status_code} {r.text[:200]}")
                continue
            answer = r.json()
            got = {**comparable(answer, day, world.calendar.today), "people": answer["people"]}
            want = expected_party_summary(world, seen, truth, a, day)
            if got != want:
                found.append(f"party tier {a.level} {a.party_id} {day}: {got} != {want}")
    return found


async def test_reporting_shows_what_the_district_scenario_did(district: Stack) -> None:
    s = district
    calendar = calendar_ending_yesterday(SMALL.days, s.settings.zone, datetime.now(UTC))
    world = build_world(SEED, SMALL, calendar)
    services = Services(s.registry, s.screening, s.checkpoint, s.reporting)
    # drive waits on every service's GET /v1/lag before the crossings and at the end
    seen = await drive(world, services, tokens=Tokens(s.settings), observe=True)

    # the scenario shows what it was written to show
    decisions = Counter(answer["decision"] for answer in seen.crossings.values())
    assert set(decisions) == {"admit", "deny", "persuade_return", "refer"}, decisions
    assert sum(len(a.get("breaches") or []) for a in seen.crossings.values()) > 0
    missed = sum(len(f["missed"]) for f in seen.follow_ups.values())
    assert 0 < missed < len(world.plan.readings)
    reasons = Counter(r for k in seen.key_persons for r in k["reasons"])
    assert {"returnee_risk_area", "close_contact", "fever", "checkpoint_referral"} <= set(reasons)
    assert seen.released_on and seen.extended_on and seen.care

    # every service said caught up with nothing moving (drive's last step): reporting shows
    # everything now, without waiting for it
    truth = reckon(world, seen)
    found = (
        await mismatches(s, world, truth)
        + await blind_spot_mismatches(s, world, seen)
        + await completeness_mismatches(s, world)
    )
    if found:
        pytest.fail("reporting differs from the scenario's truth:\n" + "\n".join(found[:20]))
    # every party of both chains (their assignments reach reporting by their own consumer)
    found = await party_mismatches(s, world, seen, truth)
    if found:
        pytest.fail("party figures differ from the scenario's truth:\n" + "\n".join(found[:20]))

    # a second load writes nothing: every id is fixed, every command idempotent
    again = await drive(world, services, tokens=Tokens(s.settings))
    assert (again.created, again.unchanged) == (0, seen.created)
    assert {i: a["decision"] for i, a in again.crossings.items()} == {
        i: a["decision"] for i, a in seen.crossings.items()
    }
