"""The door-to-door campaign (拉网式排查) day by day: visits with every method and outcome,
inquiries of the people met (some returnees, contacts, fevers), and the daily reports of
grids, communities and villages (some zero, some missing)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from scenario.calendar import Calendar
from scenario.district import District, Household
from scenario.ids import OTHER_REGIONS, RISK_REGION, Ids
from scenario.plan import DailyReport, Inquiry, Plan, Visit
from scenario.scale import Scale

FIRST_VISITS = (  # (method, outcome, signed), weighted
    (("door", "screened", True), 50),
    (("door", "screened", False), 10),
    (("phone", "screened", False), 10),
    (("notice", "screened", True), 8),
    (("door", "absent", False), 12),
    (("door", "refused", False), 5),
    (("door", "vacant", False), 5),
)
REPORTING_KINDS = ("community", "grid", "village")


def plan_campaign(
    plan: Plan, district: District, cal: Calendar, scale: Scale, ids: Ids, rng: random.Random
) -> None:
    households = district.households
    for k, h in enumerate(households):
        day_index = k * cal.days // len(households)
        choices, weights = zip(*FIRST_VISITS, strict=True)
        method, outcome, signed = rng.choices(choices, weights)[0]
        at = cal.at(cal.dates[day_index], 9) + timedelta(minutes=rng.randrange(8 * 60))
        plan.visits.append(Visit(ids.of("visit", h.ref, 1), h, method, outcome, signed, at))
        if outcome in ("absent", "refused") and day_index + 1 < cal.days:
            # 接续排查: called back the next day
            again = cal.at(cal.dates[day_index + 1], 10) + timedelta(minutes=rng.randrange(300))
            plan.visits.append(
                Visit(ids.of("visit", h.ref, 2), h, "phone", "screened", False, again)
            )
        if outcome == "screened":
            plan_inquiries(plan, h, at, cal, scale, ids, rng)
    plan_reports(plan, district, cal, ids, rng)


def plan_inquiries(
    plan: Plan,
    h: Household,
    visited_at: datetime,
    cal: Calendar,
    scale: Scale,
    ids: Ids,
    rng: random.Random,
) -> None:
    for i, person in enumerate(h.persons):
        if rng.random() >= scale.inquiry_share:
            continue
        at = visited_at + timedelta(minutes=5 + 3 * i)
        day = at.astimezone(cal.zone).date()
        roll = rng.random()
        travel: tuple[dict[str, object], ...] = ()
        symptoms: tuple[str, ...] = ()
        contact, temperature = False, round(rng.uniform(36.2, 36.9), 1)
        if roll < 0.10:  # 武汉返乡
            arrived = day - timedelta(days=rng.randrange(3, 10))
            travel = (
                {
                    "place": "武汉市武昌区",
                    "region_code": RISK_REGION,
                    "arrived_on": str(arrived - timedelta(days=rng.randrange(3, 20))),
                    "left_on": str(arrived),
                },
            )
        elif roll < 0.16:
            contact = True
        elif roll < 0.19:
            temperature = round(rng.uniform(37.4, 38.6), 1)
        elif roll < 0.22:
            symptoms = ("咳嗽",)
        elif roll < 0.30:  # back from elsewhere: not a risk area
            travel = (
                {"place": "外省", "region_code": rng.choice(OTHER_REGIONS), "left_on": str(day)},
            )
        plan.inquiries.append(
            Inquiry(
                ids.of("inquiry", person.ref), person, h, at, travel, contact, symptoms, temperature
            )
        )


def plan_reports(
    plan: Plan, district: District, cal: Calendar, ids: Ids, rng: random.Random
) -> None:
    for kind in REPORTING_KINDS:
        for node in district.of_kind(kind):
            for day in cal.dates:
                roll = rng.random()
                if roll < 0.1:
                    continue  # missing: nobody reported
                zero = roll < 0.3
                figures = (
                    {}
                    if zero
                    else {"入户排查": rng.randrange(1, 40), "新增重点人员": rng.randrange(3)}
                )
                plan.reports.append(
                    DailyReport(ids.of("report", node.id, day), node, day, zero, figures)
                )
