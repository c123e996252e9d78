"""Screening's local views of the registry: places, households, persons, vehicles, parties."""

from __future__ import annotations

from typing import Any

from shared import people_views, places
from shared.projection import Projection

REGISTRY_VIEWS = Projection({**places.HANDLERS, **people_views.HANDLERS})


async def person_node(conn: Any, person_id: str) -> str | None:
    """The household (a place node) a registered, non-voided person lives in."""
    value = await conn.fetchval(
        "SELECT household_id FROM persons WHERE id = $1 AND NOT voided", person_id
    )
    return str(value) if value is not None else None
