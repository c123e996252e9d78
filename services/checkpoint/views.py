"""Checkpoint's local views of the registry: places, households, persons (by `id_hmac`),
vehicles (by plate) and parties."""

from __future__ import annotations

from shared import people_views, places
from shared.projection import Projection

REGISTRY_VIEWS = Projection({**places.HANDLERS, **people_views.HANDLERS})
