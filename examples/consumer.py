"""An outside consumer of the grid-epi topics: resume, dedupe, upcast, in per-stream order.

    python examples/consumer.py --bootstrap 127.0.0.1:59092 --group my-app \\
        --db my-app.sqlite3 registry.events screening.events checkpoint.events

It needs only aiokafka and the files in docs/contracts/ (`--contracts`); jsonschema_rs, when
installed, validates each record against the schema its `ce_dataschema` header names. What it
shows (docs/integrators.md explains why):

* its own consumer group, offsets committed only after what a record changed is stored;
* dedupe by (stream_id, version) in the same local transaction as the change (SQLite here),
  because a record may be delivered or published again;
* per-stream order only: a version that is not the next one of its stream is held back;
* old schema versions upcast to the newest one before use.
Each applied event is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

CONTRACTS_URI = "urn:grid-epi:contracts:"
DEFAULT_CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "contracts"

# (type, version) -> the step to version + 1, as the producer's contract defines it
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("PersonRegistered", 1): lambda d: {k: v for k, v in d.items() if k != "birth_year"},
}


def newest(event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    while (step := UPCASTERS.get((event_type, version))) is not None:
        data, version = step(data), version + 1
    return version, data


class Store:
    """What this consumer knows: the last version applied per stream, and the events."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, version INTEGER);
            CREATE TABLE IF NOT EXISTS events (
                stream_id TEXT, version INTEGER, type TEXT, schema_version INTEGER,
                data TEXT, PRIMARY KEY (stream_id, version));
            CREATE TABLE IF NOT EXISTS held (
                stream_id TEXT, version INTEGER, envelope TEXT, PRIMARY KEY (stream_id, version));
            """
        )

    def apply(self, envelope: dict[str, Any]) -> list[dict[str, Any]]:
        """The events applied, in stream order: none for a duplicate, none yet for a version
        whose predecessor has not arrived (it is held, and applied after it)."""
        stream, version = envelope["stream_id"], envelope["version"]
        with self.db:  # one transaction: the change and the dedupe mark together
            row = self.db.execute(
                "SELECT version FROM streams WHERE stream_id = ?", (stream,)
            ).fetchone()
            last = row[0] if row else 0
            if version <= last:
                return []
            if version != last + 1:
                self.db.execute(
                    "INSERT OR IGNORE INTO held VALUES (?, ?, ?)",
                    (stream, version, json.dumps(envelope)),
                )
                return []
            done = [envelope]
            self._store(envelope)
            while row := self.db.execute(
                "DELETE FROM held WHERE stream_id = ? AND version = ? RETURNING envelope",
                (stream, done[-1]["version"] + 1),
            ).fetchone():
                done.append(json.loads(row[0]))
                self._store(done[-1])
        return done

    def _store(self, envelope: dict[str, Any]) -> None:
        stream, version = envelope["stream_id"], envelope["version"]
        schema_version, data = newest(
            envelope["type"], envelope["schema_version"], envelope["data"]
        )
        self.db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            (stream, version, envelope["type"], schema_version, json.dumps(data)),
        )
        self.db.execute(
            "INSERT INTO streams VALUES (?, ?) ON CONFLICT (stream_id) DO UPDATE"
            " SET version = excluded.version",
            (stream, version),
        )


class Schemas:
    """The record schemas named by `ce_dataschema`, validated with jsonschema_rs if present."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.validators: dict[str, Any] = {}
        try:
            import jsonschema_rs
        except ImportError:
            self.jsonschema_rs = None
        else:
            self.jsonschema_rs = jsonschema_rs

    def check(self, uri: str | None, value: Any) -> None:
        if self.jsonschema_rs is None or not uri or not uri.startswith(CONTRACTS_URI):
            return
        if uri not in self.validators:
            schema = json.loads((self.root / uri.removeprefix(CONTRACTS_URI)).read_text())
            self.validators[uri] = self.jsonschema_rs.validator_for(schema)
        self.validators[uri].validate(value)


async def consume(args: argparse.Namespace) -> int:
    store, schemas = Store(args.db), Schemas(Path(args.contracts))
    kafka = AIOKafkaConsumer(
        *args.topics,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,  # your own group: your offsets, your pace
        enable_auto_commit=False,  # commit only what is stored
        auto_offset_reset="earliest",  # a new group reads each topic's whole history
        isolation_level="read_committed",  # never a record of an aborted relay batch
    )
    await kafka.start()
    applied = 0
    try:
        idle = 0.0
        while args.max_events is None or applied < args.max_events:
            batches = await kafka.getmany(timeout_ms=500, max_records=500)
            if not batches:
                idle += 0.5
                if args.idle_seconds is not None and idle >= args.idle_seconds:
                    break
                continue
            idle = 0.0
            for records in batches.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    envelope = json.loads(record.value)
                    schemas.check(headers.get("ce_dataschema"), envelope)
                    for event in store.apply(envelope):
                        applied += 1
                        shown = {k: event[k] for k in ("stream_id", "version", "type")}
                        print(json.dumps({**shown, "ce_type": headers.get("ce_type")}), flush=True)
            await kafka.commit()  # after the store: a crash re-reads, the dedupe absorbs it
    finally:
        await kafka.stop()
    return applied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("topics", nargs="+")
    parser.add_argument("--bootstrap", default="127.0.0.1:59092")
    parser.add_argument("--group", required=True)
    parser.add_argument("--db", default="consumer.sqlite3")
    parser.add_argument("--contracts", default=str(DEFAULT_CONTRACTS))
    parser.add_argument("--max-events", type=int, help="stop after applying this many")
    parser.add_argument("--idle-seconds", type=float, help="stop after this long with nothing")
    asyncio.run(consume(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
