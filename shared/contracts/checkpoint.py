"""Events published by checkpoint on `checkpoint.events`: gates, shifts, crossings, breaches."""

from __future__ import annotations

from shared.contracts import Catalog

TOPIC = "checkpoint.events"

CATALOG = Catalog(TOPIC, [])
