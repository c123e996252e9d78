"""Screening: the risk area, the campaign and its visits, inquiries, watches with their
temperatures, the test round with samples, doses, and the daily reports — all back-dated,
offline-style batches where the API has them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from scenario.http import Caller, Services, gather
from scenario.ids import RISK_REGION
from scenario.observed import Observed
from scenario.plan import Visit
from scenario.world import World

SIGNED_STEPS = [
    "greet",
    "qr_scanned",
    "notice_handed",
    "commitment_signed",
    "inquiry_recorded",
    "supervised",
    "verified",
]
VACCINE = "北京生物 新冠病毒灭活疫苗(Vero细胞)"


def steps_of(v: Visit) -> list[str]:
    if v.signed:
        return SIGNED_STEPS[: 5 if v.method == "door" else 4]
    if v.outcome == "screened":
        return ["greet", "inquiry_recorded"]
    return []


async def load_setup(world: World, services: Services, call: Caller) -> None:
    plan, cal, root = world.plan, world.calendar, world.district.root
    await call.send(
        services.screening,
        "POST",
        "/v1/risk-areas",
        "admin",
        {
            "id": plan.risk_area_id,
            "name": "湖北省武汉市",
            "level": "high",
            "region_codes": [RISK_REGION[:4]],
            "valid_from": str(cal.anchor - timedelta(days=30)),
        },
    )
    await call.send(
        services.screening,
        "POST",
        "/v1/campaigns",
        "admin",
        {
            "id": plan.campaign_id,
            "node_id": root.id,
            "name": "拉网式排查 不漏一户一人",
            "starts_on": str(cal.anchor),
            "due_on": str(cal.dates[-1]),
        },
    )


async def load_visits(world: World, services: Services, call: Caller, seen: Observed) -> None:
    plan = world.plan
    items = [
        {
            "id": v.id,
            "household_id": seen.household_id(v.household.ref),
            "campaign_id": plan.campaign_id,
            "method": v.method,
            "outcome": v.outcome,
            "steps": steps_of(v),
            "commitment_signed": v.signed,
            "occurred_at": v.at.isoformat(),
        }
        for v in plan.visits
    ]
    await call.batch(services.screening, "/v1/visits:batch", "grid_worker", items)
    inquiries = [
        {
            "id": q.id,
            "person_id": seen.person_id(q.person.ref),
            "travel": list(q.travel),
            "close_contact": q.close_contact,
            "symptoms": list(q.symptoms),
            "temperature": q.temperature,
            "occurred_at": q.at.isoformat(),
        }
        for q in plan.inquiries
    ]
    seen.inquiries = await call.batch(
        services.screening, "/v1/inquiries:batch", "grid_worker", inquiries
    )


async def load_watches(world: World, services: Services, call: Caller, seen: Observed) -> None:
    async def start(w: Any) -> None:
        subject = seen.person_id(w.person.ref)
        if w.kind == "observation":
            body = {
                "subject_id": subject,
                "starts_at": w.starts_at.isoformat(),
                "planned_end": str(w.planned_end),
            }
            await call.send(services.screening, "POST", "/v1/observations", "medic", body, key=w.id)
        else:
            body = {
                "id": w.id,
                "subject_id": subject,
                "type": w.kind,
                "starts_at": w.starts_at.isoformat(),
                "planned_end": str(w.planned_end),
            }
            await call.send(services.screening, "POST", "/v1/quarantines", "medic", body)

    await gather(start(w) for w in world.plan.watches)
    readings = [
        {
            "id": r.id,
            "subject_id": seen.person_id(r.person.ref),
            "celsius": r.celsius,
            "occurred_at": r.at.isoformat(),
        }
        for r in world.plan.readings
    ]
    await call.batch(services.screening, "/v1/temperatures:batch", "medic", readings)
    care = [
        {
            "id": c.id,
            "target_id": seen.person_id(c.person.ref),
            "task": c.task,
            "occurred_at": c.at.isoformat(),
        }
        for c in world.plan.care
    ]
    await call.batch(services.screening, "/v1/care-tasks:batch", "medic", care)


async def load_tests(world: World, services: Services, call: Caller, seen: Observed) -> None:
    plan, cal = world.plan, world.calendar
    day = cal.dates[-2] if cal.days > 1 else cal.dates[0]
    await call.send(
        services.screening,
        "POST",
        "/v1/test-rounds",
        "medic",
        {
            "id": plan.test_round_id,
            "node_id": world.district.root.id,
            "number": 1,
            "starts_on": str(day),
            "ends_on": str(day),
        },
    )
    samples = [
        {
            "id": s.id,
            "person_id": seen.person_id(s.person.ref),
            "round_id": plan.test_round_id,
            "occurred_at": s.at.isoformat(),
        }
        for s in plan.samples
    ]
    await call.batch(services.screening, "/v1/samples:batch", "medic", samples)
    for number in sorted({d.number for d in plan.doses}):  # a second dose after the first
        await gather(
            call.send(
                services.screening,
                "POST",
                "/v1/vaccinations",
                "medic",
                {
                    "id": d.id,
                    "person_id": seen.person_id(d.person.ref),
                    "dose_number": d.number,
                    "vaccine": VACCINE,
                    "occurred_at": d.at.isoformat(),
                },
            )
            for d in plan.doses
            if d.number == number
        )


async def load_reports(world: World, services: Services, call: Caller) -> None:
    await gather(
        call.send(
            services.screening,
            "POST",
            "/v1/daily-reports",
            "grid_worker",
            {
                "id": r.id,
                "node_id": r.node.id,
                "day": str(r.day),
                "zero": r.zero,
                "figures": r.figures,
            },
        )
        for r in world.plan.reports
    )


async def load_screening(world: World, services: Services, call: Caller, seen: Observed) -> None:
    await load_setup(world, services, call)
    await load_visits(world, services, call, seen)
    await load_watches(world, services, call, seen)
    await load_tests(world, services, call, seen)
    await load_reports(world, services, call)
