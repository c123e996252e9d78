"""Reporting read models, fed by the published topics.

`PLACES` keeps the place tree (`places`, as every service does) and how many places of each
kind lie under each place (`place_kind_counts`, see services/reporting/place_counts.py).
"""

from __future__ import annotations

from services.reporting import place_counts
from shared.projection import Projection

PLACES = Projection(place_counts.HANDLERS)
