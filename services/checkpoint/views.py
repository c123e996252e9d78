"""Checkpoint's local views of the registry: places, households, persons (by `id_hmac`),
vehicles (by plate) and parties; and of screening: risk areas and watch periods."""

from __future__ import annotations

from services.checkpoint.handlers import screening_views
from shared import people_views, places
from shared.projection import Projection

REGISTRY_VIEWS = Projection({**places.HANDLERS, **people_views.HANDLERS})
SCREENING_VIEWS = Projection(screening_views.HANDLERS)
