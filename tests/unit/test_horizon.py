"""Bounded dates, as given / when / then: a fact within the horizon around the request's
clock, plans and queried days within the calendar, each refusal a 422 naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel

from shared import problems
from shared.horizon import (
    CalendarDay,
    FactDay,
    FactTime,
    Horizon,
    RequestHorizon,
    StartTime,
    current,
)
from shared.settings import ServiceSettings

NOW = datetime(2020, 2, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


class Fact(BaseModel):
    occurred_at: FactTime | None = None
    day: FactDay | None = None
    starts_at: StartTime | None = None
    planned_end: CalendarDay | None = None


def app_at(now: datetime, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.state.settings = ServiceSettings(**settings)
    app.state.clock = lambda: now
    problems.install(app)
    app.add_middleware(RequestHorizon)

    @app.post("/facts")
    async def record(body: Fact) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/ledger")
    async def ledger(day: Annotated[CalendarDay | None, Query(alias="date")] = None) -> Any:
        return {"day": day and day.isoformat(), "now": current().now.isoformat()}

    return app


async def call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kw)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            {"occurred_at": "0001-01-01T00:00:00+00:00"},
            "body.occurred_at",
            "must not be before 2020-01-02T12:00:00+08:00 (facts are dated at most 30 days back)",
        ),
        (
            {"occurred_at": "2020-02-01T12:05:01+08:00"},
            "body.occurred_at",
            "must not be after 2020-02-01T12:05:00+08:00"
            " (facts are dated at most 300 s ahead of the clock)",
        ),
        ({"starts_at": "1900-01-01T00:00:00+08:00"}, "body.starts_at", "must not be before"),
        ({"starts_at": "2020-01-01T09:00:00+08:00"}, "body.starts_at", "must not be before"),
        ({"starts_at": "2100-01-01T00:00:00+00:00"}, "body.starts_at", "must not be after"),
        ({"day": "2020-01-01"}, "body.day", "must not be before 2020-01-02"),
        ({"day": "2020-02-02"}, "body.day", "must not be after 2020-02-01"),
        ({"planned_end": "9999-12-31"}, "body.planned_end", "must not be after 2099-12-31"),
        ({"planned_end": "0001-01-01"}, "body.planned_end", "must not be before 2000-01-01"),
    ],
)
async def test_a_date_out_of_bounds_is_a_422_naming_the_field_and_the_bound(
    body: dict[str, str], field: str, reason: str
) -> None:
    answer = await call(app_at(NOW, timezone="Asia/Shanghai"), "POST", "/facts", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["field"] == field and error["reason"].startswith(reason)


async def test_facts_within_the_horizon_of_the_requests_clock_are_accepted() -> None:
    body = {
        "occurred_at": "2020-01-02T12:00:00+08:00",  # exactly 30 days back
        "day": "2020-02-01",
        "starts_at": "2020-02-08T09:00:00+08:00",  # a watch may be planned ahead
        "planned_end": "2020-02-14",
    }
    answer = await call(app_at(NOW), "POST", "/facts", json=body)
    assert answer.status_code == 200
    # the horizon is a setting
    wider = app_at(NOW, fact_horizon_days=60)
    answer = await call(wider, "POST", "/facts", json={"occurred_at": "2019-12-10T00:00:00Z"})
    assert answer.status_code == 200


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2100-01-01"])
async def test_a_queried_day_outside_the_calendar_is_a_422_naming_the_parameter(day: str) -> None:
    answer = await call(app_at(NOW), "GET", "/ledger", params={"date": day})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "query.date"


async def test_each_request_sees_its_apps_clock_and_outside_one_the_real_clock() -> None:
    answer = await call(app_at(NOW), "GET", "/ledger", params={"date": "2020-02-01"})
    assert answer.json() == {"day": "2020-02-01", "now": NOW.isoformat()}
    outside = current()
    assert abs(outside.now - datetime.now(UTC)) < timedelta(seconds=5)
    assert Horizon(NOW).earliest == NOW - timedelta(days=30)
    assert date(2020, 1, 2) == (NOW - timedelta(days=30)).date()
