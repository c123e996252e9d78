"""A stored answer is the JSON the route's response model would have made."""

from __future__ import annotations

import json

from shared.rebuild import RebuildStatus
from shared.requests import json_answer


def test_an_answer_uses_the_field_names_the_openapi_document_declares() -> None:
    status = RebuildStatus(id="r1", schema_name="grid_reporting")
    answer = json_answer(status, 202)
    body = json.loads(bytes(answer.body))
    assert body == status.model_dump(mode="json", by_alias=True)
    assert body["schema"] == "grid_reporting" and "schema_name" not in body
