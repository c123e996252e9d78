"""Published event contracts: one module per topic.

Rules every contract module follows (see docs/events.md):

* An event type is a past-tense fact named from the domain (`NodeCreated`, `HouseholdVisited`).
* Its payload is a Pydantic model with `event_type` and `schema_version` class variables.
* Adding an optional field is compatible and keeps the version; consumers ignore fields
  they do not know. Any other change (renaming, removing, changing meaning or type) bumps
  `schema_version` and registers an upcaster from the previous version, so a consumer
  always reads the newest shape whatever version is stored on the topic.
* Producers and consumers import these modules only, never each other's code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.envelope import Envelope

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventPayload(BaseModel):
    """Base of every published payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class UnknownEvent(Exception):
    """The envelope names a type or schema version this contract does not know."""


class Catalog:
    """The event types published on one topic, with their upcasters."""

    def __init__(
        self,
        topic: str,
        events: Iterable[type[EventPayload]],
        upcasters: dict[tuple[str, int], Upcaster] | None = None,
        earlier: Iterable[type[EventPayload]] = (),
    ) -> None:
        """`earlier`: the models of versions no longer produced, so the published contract
        files keep every version a stored or retained record may still have."""
        self.topic = topic
        self.events: dict[str, type[EventPayload]] = {e.event_type: e for e in events}
        self.upcasters = upcasters or {}
        self.earlier: dict[str, list[type[EventPayload]]] = {}
        for e in sorted(earlier, key=lambda e: e.schema_version):
            self.earlier.setdefault(e.event_type, []).append(e)

    def __contains__(self, event_type: str) -> bool:
        return event_type in self.events

    def decode(self, envelope: Envelope) -> EventPayload:
        """Upcast the stored payload to the current schema and validate it."""
        cls = self.events.get(envelope.type)
        if cls is None:
            raise UnknownEvent(f"unknown event type {envelope.type!r} on {self.topic}")
        version, data = envelope.schema_version, dict(envelope.data)
        if version > cls.schema_version:
            raise UnknownEvent(
                f"{envelope.type} schema_version {version} is newer than {cls.schema_version}"
            )
        while version < cls.schema_version:
            upcast = self.upcasters.get((envelope.type, version))
            if upcast is None:
                raise UnknownEvent(f"no upcaster for {envelope.type} v{version}")
            data, version = upcast(data), version + 1
        return cls.model_validate(data)

    def json_schemas(self) -> dict[str, Any]:
        """Each event's current schema, and under `earlier` those of its older versions."""
        schemas: dict[str, Any] = {}
        for name, cls in sorted(self.events.items()):
            schemas[name] = {
                "schema_version": cls.schema_version,
                "schema": cls.model_json_schema(),
            }
            if name in self.earlier:
                schemas[name]["earlier"] = {
                    str(e.schema_version): e.model_json_schema() for e in self.earlier[name]
                }
        return schemas
