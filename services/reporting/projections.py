"""Reporting read models, fed by the published topics.

The skeleton keeps the place tree (`places`); figures per node and day come with the
reporting issue.
"""

from __future__ import annotations

from shared import places
from shared.projection import Projection

PLACES = Projection(places.HANDLERS)
