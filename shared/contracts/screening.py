"""Events published by screening on `screening.events`: visits, inquiries, key persons,
quarantine, follow-ups, tests, vaccinations, risk areas, daily reports."""

from __future__ import annotations

from shared.contracts import Catalog

TOPIC = "screening.events"

CATALOG = Catalog(TOPIC, [])
