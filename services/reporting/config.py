"""Reporting settings (`REPORTING_*`)."""

from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    service: str = "reporting"
    port: int = 8004

    # -- daily-report completeness (ledgers.py): mirrors screening's deadlines, HH:MM in the
    # system zone per node kind, to tell `pending` (before the deadline) from `missing`
    report_deadlines: dict[str, str] = Field(
        default_factory=lambda: {
            "grid": "18:00",
            "community": "20:00",
            "street": "21:00",
            "township": "21:00",
        }
    )
    report_default_deadline: str = "22:00"

    @field_validator("report_deadlines")
    @classmethod
    def _deadlines_are_times(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, hhmm in value.items():
            parse_hhmm(hhmm, f"report_deadlines[{kind}]")
        return value

    @field_validator("report_default_deadline")
    @classmethod
    def _default_deadline_is_a_time(cls, value: str) -> str:
        parse_hhmm(value, "report_default_deadline")
        return value

    def report_deadline(self, kind: str) -> time:
        return parse_hhmm(self.report_deadlines.get(kind, self.report_default_deadline), kind)


def parse_hhmm(value: str, name: str) -> time:
    hours, _, minutes = value.partition(":")
    if not (len(hours) == len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{name} must be HH:MM, got {value!r}")
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"{name} must be HH:MM, got {value!r}")
    return time(int(hours), int(minutes))
