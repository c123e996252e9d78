"""Request bodies and responses of the daily-report API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.screening.domain.reports import MAX_FIGURES, Standing
from shared.horizon import FactDay, example_day
from shared.input_limits import MAX_COUNT

FigureName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FigureValue = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]


class DailyReportCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "g1-daily",
                    "node_id": "g1",
                    "day": example_day(),
                    "zero": False,
                    "figures": {"入户排查户数": 126, "湖北返乡人员": 2, "发热人员": 0},
                },
                {"node_id": "g2", "day": example_day(), "zero": True, "figures": {}},
            ]
        },
    )

    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$",
        description="this revision's id; sending it again changes nothing",
    )
    node_id: str = Field(min_length=1, max_length=100)
    day: FactDay = Field(description="the day reported on, in the system zone")
    zero: bool = Field(description="零报告: nothing to report; figures must then be 0 or absent")
    figures: dict[FigureName, FigureValue] = Field(
        default_factory=dict, max_length=MAX_FIGURES, description="名称 → 非负整数"
    )


class DailyReportOut(BaseModel):
    id: str = Field(description="the report id of this revision")
    node_id: str
    day: date
    revision: int
    zero: bool
    figures: dict[str, int]
    late: bool = Field(description="this revision came after the node's deadline")
    first_late: bool = Field(description="the node's first report of the day came late")
    submitted_by: str
    submitted_at: datetime = Field(description="the server's time of submission")
    deadline: datetime


class CompletenessItem(BaseModel):
    node_id: str
    name: str
    path: str
    status: Standing
    zero: bool | None = Field(None, description="None when nothing was reported")
    late: bool | None = None
    revision: int | None = None
    figures: dict[str, int] | None = None
    submitted_at: datetime | None = None


class CompletenessOut(BaseModel):
    node_id: str
    day: date
    kind: str
    deadline: datetime
    counts: dict[str, int] = Field(
        description="submitted, zero, late, missing, pending, reported and total",
        examples=[
            {
                "submitted": 5,
                "zero": 2,
                "late": 1,
                "missing": 1,
                "pending": 0,
                "reported": 8,
                "total": 9,
            }
        ],
    )
    items: list[CompletenessItem]
