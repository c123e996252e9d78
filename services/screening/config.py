"""Screening settings (`SCREENING_*`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.screening.domain import care as care_domain
from services.screening.domain import slots as slot_math
from shared.settings import ServiceSettings


class ScreeningSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCREENING_", extra="ignore")

    service: str = "screening"
    port: int = 8002

    # -- campaigns, visits, daily reports (visits.py, reports.py) -------------------------------
    # a visit's `occurred_at` may lie this far ahead of the server's clock (field devices drift)
    visit_clock_skew_seconds: int = Field(300, ge=0)
    # items of `POST /v1/visits:batch` committed per transaction
    visit_batch_chunk: int = Field(500, ge=1, le=5000)
    # daily-report deadline (HH:MM in the system zone) per node kind; others use the default
    report_deadlines: dict[str, str] = Field(
        default_factory=lambda: {
            "grid": "18:00",
            "community": "20:00",
            "street": "21:00",
            "township": "21:00",
        }
    )
    report_default_deadline: str = "22:00"

    # -- inquiries, key persons, tests, vaccination (key_persons.py, testing.py) ----------------
    # an inquiry's, sample's or dose's `occurred_at` may lie this far ahead of the server's clock
    field_clock_skew_seconds: int = Field(300, ge=0)
    # items of `POST /v1/inquiries:batch` and `POST /v1/samples:batch` committed per transaction
    inquiry_batch_chunk: int = Field(500, ge=1, le=5000)
    sample_batch_chunk: int = Field(500, ge=1, le=5000)

    @field_validator("report_deadlines")
    @classmethod
    def _deadlines_are_times(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, hhmm in value.items():
            cls._check_hhmm(hhmm, f"report_deadlines[{kind}]")
        return value

    @field_validator("report_default_deadline")
    @classmethod
    def _default_deadline_is_a_time(cls, value: str) -> str:
        return cls._check_hhmm(value, "report_default_deadline")

    @staticmethod
    def _check_hhmm(value: str, name: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (len(hours) == len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
            raise ValueError(f"{name} must be HH:MM, got {value!r}")
        if int(hours) > 23 or int(minutes) > 59:
            raise ValueError(f"{name} must be HH:MM, got {value!r}")
        return value

    # -- watch, follow-ups and care tasks (watch.py, care.py, scheduler.py) ---------------------
    # follow-up slots (每日两次体温), local windows in the system zone
    followup_slots: list[str] = Field(default_factory=lambda: ["08:00-10:00", "16:00-18:00"])
    # the missed-slot scheduler: seconds between scans, whether this instance runs it, and how
    # long after a window ends a reading still counts before the slot is marked missed
    scheduler_interval: float = Field(30.0, gt=0)
    run_scheduler: bool = True
    scheduler_grace_seconds: int = Field(0, ge=0)
    # misses one pass appends for one stream (in one transaction): a stream further behind is
    # caught up over several passes, after every other stream due has had its turn
    scheduler_misses_per_watch: int = Field(200, ge=1, le=10000)
    # daily care plan (五个每日) per kind of watch: task -> windows (one window per time)
    care_plans: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in care_domain.DEFAULT_CARE_PLANS.items()}
    )
    # the span of day a place plan's `times_per_day` is spread over
    place_care_day: str = "07:00-21:00"
    # items of `POST /v1/temperatures:batch` and `/v1/care-tasks:batch` per transaction
    watch_batch_chunk: int = Field(500, ge=1, le=5000)

    @field_validator("followup_slots")
    @classmethod
    def _slots_are_windows(cls, value: list[str]) -> list[str]:
        slot_math.parse_slots(value)
        return value

    @field_validator("care_plans")
    @classmethod
    def _plans_are_valid(
        cls, value: dict[str, dict[str, list[str]]]
    ) -> dict[str, dict[str, list[str]]]:
        care_domain.parse_plans(value)
        return value

    @field_validator("place_care_day")
    @classmethod
    def _day_is_a_window(cls, value: str) -> str:
        slot_math.parse_slot(value)
        return value

    @property
    def follow_up_slots(self) -> tuple[slot_math.Slot, ...]:
        return slot_math.parse_slots(self.followup_slots)

    @property
    def parsed_care_plans(self) -> care_domain.CarePlans:
        return care_domain.parse_plans(self.care_plans)
