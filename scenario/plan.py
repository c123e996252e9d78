"""What the scenario will send, item by item (the driver turns each into a request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from scenario.district import Household, Person, Place


@dataclass(frozen=True)
class Visit:  # 入户排查
    id: str
    household: Household
    method: str  # door | phone | notice
    outcome: str  # screened | absent | refused | vacant
    signed: bool
    at: datetime


@dataclass(frozen=True)
class Inquiry:  # 询问登记
    id: str
    person: Person
    household: Household
    at: datetime
    travel: tuple[dict[str, Any], ...] = ()
    close_contact: bool = False
    symptoms: tuple[str, ...] = ()
    temperature: float | None = None


@dataclass(frozen=True)
class WatchPlan:
    """Home observation (kind `observation`) or a quarantine; extended and/or released on
    the load day."""

    id: str
    person: Person
    household: Household
    kind: str  # observation | home | home_medical | centralized
    starts_at: datetime
    planned_end: date
    extend_to: date | None = None
    release: bool = False


@dataclass(frozen=True)
class Reading:  # 体温
    id: str
    person: Person
    household: Household
    celsius: float
    at: datetime


@dataclass(frozen=True)
class CareTask:  # 五个每日: a call, supplies, garbage, disinfection
    id: str
    person: Person
    household: Household
    task: str
    at: datetime


@dataclass(frozen=True)
class Sample:  # 核酸采样
    id: str
    person: Person
    household: Household
    at: datetime
    result: str | None  # posted on the load day, None: still pending


@dataclass(frozen=True)
class Dose:
    id: str
    person: Person
    household: Household
    number: int
    at: datetime


@dataclass(frozen=True)
class DailyReport:  # 日报 / 零报告
    id: str
    node: Place
    day: date
    zero: bool
    figures: dict[str, int]


@dataclass(frozen=True)
class Gate:  # 卡口
    id: str
    node: Place
    name: str
    level: str
    policy: dict[str, Any]


@dataclass(frozen=True)
class Shift:
    id: str
    gate: Gate
    sub: str
    role: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Crossing:
    id: str
    gate: Gate
    at: datetime
    body: dict[str, Any]
    case: str  # what the scenario meant to show (the server decides)


@dataclass(frozen=True)
class Party:
    id: str
    kind: str  # person | unit
    name: str
    role: str
    node_id: str


@dataclass(frozen=True)
class Assignment:
    """`target` is a place id, a Household (its registry id is known after the import) or a
    Person."""

    id: str
    instance_id: str
    level: int
    party_id: str
    target: Place | Household | Person


@dataclass(frozen=True)
class ChainInstance:
    id: str
    template_id: str
    root: Place
    valid_from: date


@dataclass
class Plan:
    campaign_id: str
    risk_area_id: str
    test_round_id: str
    visits: list[Visit] = field(default_factory=list)
    inquiries: list[Inquiry] = field(default_factory=list)
    watches: list[WatchPlan] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    care: list[CareTask] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    doses: list[Dose] = field(default_factory=list)
    reports: list[DailyReport] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    instances: list[ChainInstance] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    blind_spots: list[tuple[str, int, str]] = field(default_factory=list)
    """(instance id, tier, target id) left without a party on purpose (死角)."""
