"""The OpenAPI examples of bodies with facts in them stay valid as days pass: they are made
relative to today, within the fact horizon (examples dated 2020 were refused once facts were
bounded, and the one of `POST /v1/quarantines` made the scheduler backfill years)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from services.checkpoint.commands.crossings import CrossingCreate, CrossingItem
from services.screening.commands.care import TaskBatch, TaskCreate, TaskItem
from services.screening.commands.key_persons import InquiryBatch, InquiryCreate, InquiryItem
from services.screening.commands.reports import DailyReportCreate
from services.screening.commands.testing import RoundCreate, SampleBatch, SampleItem
from services.screening.commands.visits import VisitBatch, VisitCreate, VisitItem
from services.screening.commands.watch import (
    Extension,
    ObservationCreate,
    QuarantineCreate,
    ReadingBatch,
    ReadingCreate,
    ReadingItem,
)

SINGLE: list[type[BaseModel]] = [
    CrossingCreate,
    CrossingItem,
    TaskCreate,
    InquiryCreate,
    DailyReportCreate,
    RoundCreate,
    VisitCreate,
    Extension,
    ObservationCreate,
    QuarantineCreate,
    ReadingCreate,
]
BATCHES: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (TaskBatch, TaskItem),
    (InquiryBatch, InquiryItem),
    (SampleBatch, SampleItem),
    (VisitBatch, VisitItem),
    (ReadingBatch, ReadingItem),
]


def examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), model
    found = extra["examples"]
    assert isinstance(found, list) and found, model
    return found


@pytest.mark.parametrize("model", SINGLE, ids=lambda m: m.__name__)
def test_a_bodys_examples_are_valid_now(model: type[BaseModel]) -> None:
    for example in examples(model):
        model.model_validate(example)


@pytest.mark.parametrize(("batch", "item"), BATCHES, ids=lambda m: m.__name__)
def test_a_batchs_example_items_are_valid_now(
    batch: type[BaseModel], item: type[BaseModel]
) -> None:
    for example in examples(batch):
        for raw in example["items"]:
            item.model_validate(raw)
