"""Prometheus metrics of the kernel (one process-wide registry, labelled by service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "grid_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "grid_http_request_seconds", "HTTP request latency", ["service", "method", "route"]
)
RELAY_PUBLISHED = Counter("grid_relay_published_total", "Events published by the relay", ["relay"])
RELAY_LAG = Gauge(
    "grid_relay_lag_seconds",
    "Age of the newest event of the last published batch when it was acknowledged",
    ["relay"],
)
RELAY_BACKLOG = Gauge(
    "grid_relay_backlog_events",
    "Committed events not yet visible to the relay or not yet published",
    ["relay"],
)
CONSUMER_APPLIED = Counter(
    "grid_consumer_applied_total", "Events applied by a consumer", ["consumer"]
)
CONSUMER_DUPLICATES = Counter(
    "grid_consumer_duplicates_total",
    "Re-delivered events skipped by (stream, version)",
    ["consumer"],
)
CONSUMER_DEAD_LETTERS = Counter(
    "grid_consumer_dead_letters_total", "Events parked in the dead-letter table", ["consumer"]
)
CONSUMER_LAG = Gauge(
    "grid_consumer_lag_seconds", "Age of the last applied event when it was applied", ["consumer"]
)

# per partition, refreshed by shared/lag.py
COMMITTED = Gauge(
    "grid_consumer_committed_offset",
    "Next offset a read model will apply, as stored with it in Postgres",
    ["consumer", "topic", "partition"],
)
HIGH_WATERMARK = Gauge(
    "grid_topic_high_watermark",
    "Offset after the last record of a partition",
    ["topic", "partition"],
)
OFFSET_LAG = Gauge(
    "grid_consumer_offset_lag",
    "Records of a partition not yet applied to a read model",
    ["consumer", "topic", "partition"],
)
DEAD_LETTERED = Gauge(
    "grid_consumer_dead_lettered_events",
    "Events a read model's consumer parked in dead_letters (rows in the table)",
    ["consumer"],
)
RELAY_OLDEST_UNPUBLISHED = Gauge(
    "grid_relay_oldest_unpublished_seconds",
    "How long the oldest event of a store not yet published has waited (0: none waiting)",
    ["relay"],
)
CONSUMER_HELD_STREAMS = Gauge(
    "grid_consumer_held_streams",
    "Streams whose later versions a consumer holds back behind a dead letter",
    ["consumer"],
)
CONSUMER_LAG_UNKNOWN = Gauge(
    "grid_consumer_lag_unknown",
    "1 while Kafka could not be asked for the high watermarks of a consumer's topics "
    "(its grid_consumer_offset_lag is NaN then)",
    ["consumer"],
)
