"""An upload's results serialised without a pydantic model per item read exactly as the
`BatchOut` model says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson

from services.checkpoint.api.crossings import batch_json
from services.checkpoint.commands.crossings import BatchOut, ItemResult
from services.checkpoint.handlers.crossings import ItemOutcome

OUTCOMES = [
    ItemOutcome(0, "a-1", "created", "admit", (), None, (), 1),
    ItemOutcome(
        1,
        "a-2",
        "created",
        "deny",
        ("under_quarantine", "health_code_yellow"),
        datetime(2026, 11, 30, 8, 1, 2, 345678, tzinfo=UTC),
        ("p-1", "h:ab12"),
        3,
    ),
    ItemOutcome(
        2,
        "a-3",
        "unchanged",
        "refer",
        ("fever",),
        datetime(2026, 11, 30, 16, 0, tzinfo=timezone(timedelta(hours=8))),
        (),
        1,
    ),
    ItemOutcome(
        3,
        None,
        "error",
        code="validation-error",
        refusal="invalid",
        field="occurred_at",
        reason="Field required",
    ),
    ItemOutcome(4, "a-5", "error", code="no-shift", refusal="forbidden", field="checkpoint_id"),
]


def model_json(outcomes: list[ItemOutcome]) -> bytes:
    return BatchOut(
        received=7,
        created=sum(r.status == "created" for r in outcomes),
        unchanged=sum(r.status == "unchanged" for r in outcomes),
        errors=sum(r.status == "error" for r in outcomes),
        results=[
            ItemResult(
                index=r.index,
                id=r.id,
                status=r.status,
                decision=r.decision,
                reasons=list(r.reasons),
                views_as_of=r.views_as_of,
                breaches=list(r.breaches),
                code=r.code,
                refusal=r.refusal,
                field=r.field,
                reason=r.reason,
            )
            for r in outcomes
        ],
    ).model_dump_json()


def test_batch_results_read_as_the_model_serialises_them() -> None:
    assert orjson.loads(batch_json(7, OUTCOMES)) == orjson.loads(model_json(OUTCOMES))


def test_batch_results_carry_times_in_the_models_text_form() -> None:
    assert batch_json(7, OUTCOMES).decode() == model_json(OUTCOMES)


def test_batch_results_hold_every_field_of_an_item_result() -> None:
    [first] = orjson.loads(batch_json(1, OUTCOMES[:1]))["results"]
    assert set(first) == set(ItemResult.model_fields)
