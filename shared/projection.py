"""Dispatch of decoded events to a read model's per-type handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.contracts import EventPayload
from shared.contracts.published import decode
from shared.envelope import Envelope

Apply = Callable[[Any, Envelope, Any], Awaitable[None]]


class Projection:
    """A read model fed by `EventConsumer`: `handlers` maps payload classes to functions.

    Types known to the contracts but not handled here are ignored; types unknown to the
    contracts, or payloads that do not validate, raise and are parked by the consumer.
    """

    def __init__(self, handlers: dict[type[EventPayload], Apply]) -> None:
        self.handlers = handlers

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        for env in events:
            payload = decode(env)
            handler = self.handlers.get(type(payload))
            if handler is not None:
                await handler(conn, env, payload)
