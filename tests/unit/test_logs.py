"""Repeated log lines are rate-limited: an outage writes a few lines, not thousands."""

from __future__ import annotations

import logging

from shared.logs import RateLimit


def record(msg: str, name: str = "aiokafka.conn", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


def test_the_same_message_passes_a_few_times_per_window_then_reports_what_it_dropped() -> None:
    now = [0.0]
    limit = RateLimit(seconds=30, burst=3, clock=lambda: now[0])
    passed = [limit.filter(record("Unable connect to %s")) for _ in range(9_793)]
    assert sum(passed) == 3
    now[0] = 31
    summary = record("Unable connect to %s")
    assert limit.filter(summary)
    assert "9790 similar messages suppressed" in str(summary.msg)


def test_different_messages_and_critical_records_are_not_held_back() -> None:
    limit = RateLimit(seconds=30, burst=1, clock=lambda: 0.0)
    assert limit.filter(record("a")) and limit.filter(record("b"))
    assert not limit.filter(record("a"))
    assert limit.filter(record("a", level=logging.CRITICAL))
