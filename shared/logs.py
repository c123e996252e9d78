"""Structured JSON logs carrying the request's correlation id."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class RateLimit(logging.Filter):
    """At most `burst` records per logger and message template every `seconds`; the next
    one let through says how many were dropped. A broker outage otherwise makes the Kafka
    client log every reconnection attempt of every client (thousands of lines a minute)."""

    def __init__(
        self,
        seconds: float = 30.0,
        burst: int = 3,
        clock: Any = time.monotonic,
        loggers: tuple[str, ...] = ("aiokafka", "kafka"),
    ) -> None:
        super().__init__()
        self.loggers = loggers
        self.seconds = seconds
        self.burst = burst
        self.clock = clock
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [start, sent, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL or not record.name.startswith(self.loggers):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.seconds:
            dropped = int(window[2]) if window else 0
            if len(self._windows) > 1000:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} ({dropped} similar messages suppressed)"
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
