"""`python -m scenario --scale small|large --seed N --registry URL --screening URL
--checkpoint URL --reporting URL`: build the world and load it through the public APIs.

The simulated days end yesterday. A run on a later day finds the campaign of the first run
and keeps its days, so loading twice never adds a second copy.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from datetime import UTC, date, datetime

from scenario.calendar import Calendar, calendar_ending_yesterday
from scenario.driver import drive
from scenario.http import Caller, Services, Tokens
from scenario.ids import Ids
from scenario.scale import SCALES
from scenario.world import build_world
from shared.settings import ServiceSettings


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scenario", description=__doc__)
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--registry", default="http://127.0.0.1:8001")
    p.add_argument("--screening", default="http://127.0.0.1:8002")
    p.add_argument("--checkpoint", default="http://127.0.0.1:8003")
    p.add_argument("--reporting", default="http://127.0.0.1:8004")
    p.add_argument(
        "--patience", type=float, help="seconds to wait for views (default 120, large 1800)"
    )
    return p.parse_args(argv)


async def earlier_anchor(services: Services, seed: int) -> date | None:
    """The first day of a campaign an earlier run loaded, if any."""
    call = Caller(Tokens(), patience=0)
    campaign = Ids(seed).of("campaign", "拉网式排查")
    r = await call.send(
        services.screening, "GET", f"/v1/campaigns/{campaign}", "admin", accept=(200, 404)
    )
    return date.fromisoformat(r.json()["starts_on"]) if r.status_code == 200 else None


async def main(args: argparse.Namespace) -> None:
    # it signs its callers' tokens with the services' key: the development one unless the
    # environment holds real keys (then development mode only adds the warning)
    os.environ.setdefault("GRID_DEV_MODE", "1")
    scale, zone = SCALES[args.scale], ServiceSettings().zone
    services = Services.at(args.registry, args.screening, args.checkpoint, args.reporting)
    try:
        anchor = await earlier_anchor(services, args.seed)
        calendar = (
            Calendar(anchor, scale.days, zone)
            if anchor
            else calendar_ending_yesterday(scale.days, zone, datetime.now(UTC))
        )
        started = time.monotonic()
        world = build_world(args.seed, scale, calendar)
        patience = args.patience or (120.0 if scale.name == "small" else 1800.0)
        seen = await drive(world, services, patience=patience)
    finally:
        await services.aclose()
    d, plan = world.district, world.plan
    decisions: dict[str, int] = {}
    for answer in seen.crossings.values():
        decisions[answer["decision"]] = decisions.get(answer["decision"], 0) + 1
    print(
        f"scenario {scale.name} seed {args.seed}: {calendar.dates[0]}..{calendar.dates[-1]}, "
        f"{len(d.places)} places, {len(d.households)} households, {len(d.persons)} persons, "
        f"{len(plan.visits)} visits, {len(plan.inquiries)} inquiries, {len(plan.watches)} "
        f"watches, {len(plan.readings)} temperatures, {len(plan.samples)} samples, "
        f"{len(plan.gates)} gates, {len(plan.crossings)} crossings {decisions}, "
        f"{seen.requests} requests in {time.monotonic() - started:.1f}s; batch items "
        f"{seen.created} created, {seen.unchanged} unchanged"
    )
    print(f"district {d.root.id}  street {d.street.id}  township {d.township.id}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main(parse()))
