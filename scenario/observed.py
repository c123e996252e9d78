"""What the services answered: the ids the registry gave, the gates' decisions, the key
persons screening flagged, the follow-ups it saw done or missed, and the days of the things
that happened "now" (on the load day)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass
class Observed:
    household_ids: dict[str, str] = field(default_factory=dict)  # household ref -> registry id
    person_ids: dict[str, str] = field(default_factory=dict)  # person ref -> registry id
    registered_on: date | None = None  # the day the roster import ran
    crossings: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> item result
    inquiries: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> item result
    key_persons: list[dict[str, Any]] = field(default_factory=list)  # details with history
    follow_ups: dict[str, dict[str, Any]] = field(default_factory=dict)  # subject -> answer
    care: dict[str, dict[str, Any]] = field(default_factory=dict)  # subject -> answer
    extended_on: dict[str, date] = field(default_factory=dict)  # watch id -> day
    released_on: dict[str, date] = field(default_factory=dict)  # watch id -> day
    resulted_on: dict[str, date] = field(default_factory=dict)  # sample id -> day
    requests: int = 0
    created: int = 0  # batch items the services wrote
    unchanged: int = 0  # batch items they already had (a second run)

    def person_id(self, ref: str) -> str:
        return self.person_ids[ref]

    def household_id(self, ref: str) -> str:
        return self.household_ids[ref]
