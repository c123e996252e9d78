"""Bounded dates: how far from the service's clock a time or a day given by a caller may lie.

A *fact* — a visit, a reading, a watch's start, a crossing, a sample, a dose, a care task, an
inquiry, a daily report — is recorded soon after it happened: it may be dated at most
`GRID_FACT_HORIZON_DAYS` (30) back and `GRID_FACT_FUTURE_SECONDS` (300) ahead of the clock.
Further back a fact makes work without end (a watch begun years ago owes the scheduler
thousands of follow-ups) or cannot be stored faithfully (a time in year 1 loses its offset on
its way through JSON, and every consumer of its event refuses it). Plans and history — a
campaign's due day, a chain's period, a risk area, a stop of an inquiry's travel, the day a
ledger is asked for — are not facts dated now, but they lie in a sane calendar
(`CALENDAR_START`..`CALENDAR_END`), so that day arithmetic never overflows and a year-9999
end is refused.

The bounds are checked where input is parsed, by the annotated types below, in request
bodies, batch items and query parameters alike: a value outside is a 422 naming the field and
the bound. A fact's bounds are relative to the request's clock: `install(app)` puts
`app.state.clock` (a test's fixed time; else the real one) and the settings in a context
variable for each request. Outside a request the real clock and the default bounds apply.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.envelope import utc_now

DEFAULT_BACK = timedelta(days=30)
DEFAULT_AHEAD = timedelta(minutes=5)
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")  # GRID_TIMEZONE's default
CALENDAR_START = date(2000, 1, 1)
CALENDAR_END = date(2099, 12, 31)


@dataclass(frozen=True)
class Horizon:
    """The window a fact may be dated in, around `now`."""

    now: datetime
    back: timedelta = DEFAULT_BACK
    ahead: timedelta = DEFAULT_AHEAD
    zone: tzinfo = DEFAULT_ZONE

    @property
    def earliest(self) -> datetime:
        return self.now - self.back

    @property
    def latest(self) -> datetime:
        return self.now + self.ahead

    @classmethod
    def of(cls, settings: Any, now: datetime) -> Horizon:
        """From a service's settings (`fact_horizon_days`, `fact_future_seconds`, `zone`)."""
        return cls(
            now,
            timedelta(days=settings.fact_horizon_days),
            timedelta(seconds=settings.fact_future_seconds),
            settings.zone,
        )


_current: ContextVar[Horizon | None] = ContextVar("fact_horizon", default=None)


def current() -> Horizon:
    """The horizon of the request being handled (the real clock outside one)."""
    return _current.get() or Horizon(utc_now())


def _before(earliest: date | datetime, why: str) -> PydanticCustomError:
    return PydanticCustomError(
        "before_horizon",
        "must not be before {earliest} ({why})",
        {"earliest": earliest.isoformat(), "why": why},
    )


def _after(latest: date | datetime, why: str) -> PydanticCustomError:
    return PydanticCustomError(
        "after_horizon",
        "must not be after {latest} ({why})",
        {"latest": latest.isoformat(), "why": why},
    )


def _days(h: Horizon) -> str:
    return f"facts are dated at most {h.back.days} days back"


def _ahead(h: Horizon) -> str:
    return f"facts are dated at most {int(h.ahead.total_seconds())} s ahead of the clock"


def check_fact_time(at: datetime) -> datetime:
    h = current()
    if at < h.earliest:
        raise _before(h.earliest.astimezone(h.zone), _days(h))
    if at > h.latest:
        raise _after(h.latest.astimezone(h.zone), _ahead(h))
    return at


def check_fact_day(day: date) -> date:
    h = current()
    first, last = h.earliest.astimezone(h.zone).date(), h.latest.astimezone(h.zone).date()
    if day < first:
        raise _before(first, _days(h))
    if day > last:
        raise _after(last, _ahead(h))
    return day


_CALENDAR = f"dates lie in {CALENDAR_START.year}-{CALENDAR_END.year}"
_CALENDAR_FROM = datetime.combine(CALENDAR_START, time(), UTC)
_CALENDAR_TO = datetime.combine(CALENDAR_END + timedelta(days=1), time(), UTC)


def check_calendar_day(day: date) -> date:
    if day < CALENDAR_START:
        raise _before(CALENDAR_START, _CALENDAR)
    if day > CALENDAR_END:
        raise _after(CALENDAR_END, _CALENDAR)
    return day


def check_calendar_time(at: datetime) -> datetime:
    if at < _CALENDAR_FROM:
        raise _before(_CALENDAR_FROM, _CALENDAR)
    if at >= _CALENDAR_TO:
        raise _after(_CALENDAR_TO, _CALENDAR)
    return at


def check_start_time(at: datetime) -> datetime:
    h = current()
    if at < h.earliest:
        raise _before(h.earliest.astimezone(h.zone), _days(h))
    return check_calendar_time(at)


FactTime = Annotated[AwareDatetime, AfterValidator(check_fact_time)]
"""When a fact happened: within the horizon around the request's clock."""
StartTime = Annotated[AwareDatetime, AfterValidator(check_start_time)]
"""When something owing work from then on begins (a watch, a place's care plan): not before
the horizon, since every window from it on is due; it may be planned ahead in the calendar."""
FactDay = Annotated[date, AfterValidator(check_fact_day)]
"""The local day a fact is about (a daily report): within the horizon, in the system zone."""
CalendarDay = Annotated[date, AfterValidator(check_calendar_day)]
"""A day of a plan or of history, or a day asked about: in the sane calendar."""
CalendarTime = Annotated[AwareDatetime, AfterValidator(check_calendar_time)]
"""A planned time (a shift, a policy taking effect, a gate opening): in the sane calendar."""


def example_time(days_ago: int = 1, hour: int = 9, minute: int = 0) -> str:
    """An OpenAPI example time: local `hour:minute` (inside the day's follow-up and care
    windows) `days_ago` days before today, so that the documented example stays within the
    horizon (examples are made when the service starts)."""
    day = utc_now().astimezone(DEFAULT_ZONE).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), DEFAULT_ZONE).isoformat()


def example_day(offset_days: int = 0) -> str:
    """An OpenAPI example day `offset_days` from today (negative: before)."""
    return (utc_now().astimezone(DEFAULT_ZONE).date() + timedelta(days=offset_days)).isoformat()


class RequestHorizon:
    """Puts the horizon of each request in the context: `app.state.clock` when set (tests,
    operators replaying a day), else the real clock, with the app's settings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "app" not in scope:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        clock = getattr(state, "clock", None) or utc_now
        token = _current.set(Horizon.of(state.settings, clock()))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
