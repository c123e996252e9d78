"""Every published catalog, and decoding of an envelope from any topic.

Event type names are unique across topics, so a consumer of several topics can decode by
type alone.
"""

from __future__ import annotations

from shared.contracts import Catalog, EventPayload, UnknownEvent, checkpoint, registry, screening
from shared.envelope import Envelope

CATALOGS: tuple[Catalog, ...] = (registry.CATALOG, screening.CATALOG, checkpoint.CATALOG)
_BY_TYPE: dict[str, Catalog] = {t: c for c in CATALOGS for t in c.events}


def catalog_of(event_type: str) -> Catalog | None:
    """The catalog that publishes `event_type`, if any does."""
    return _BY_TYPE.get(event_type)


def decode(envelope: Envelope) -> EventPayload:
    catalog = _BY_TYPE.get(envelope.type)
    if catalog is None:
        raise UnknownEvent(f"unknown event type {envelope.type!r}")
    return catalog.decode(envelope)
