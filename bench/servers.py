"""Services as real uvicorn servers on loopback, for benchmarks that measure over HTTP.

Each run gets its own schemas (`<run>_<service>`), topic prefix (`<run>.`) and consumer
groups, so a benchmark never sees another run's data and leaves the shared PostgreSQL and
Kafka as it found them (schemas dropped, topics deleted). The services run with their
production settings (relay poll interval, consumer batch size, pool sizes); only the
database schema, ports, topic prefix and log level are set here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from shared.auth import ALL_NODES, issue_token
from shared.migrations import upgrade_async
from shared.settings import ServiceSettings
from shared.testing import drop_schema, unique

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    schema: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int:
        return self.process.pid


@dataclass
class Servers:
    run: str
    dsn: str
    bootstrap: str
    by_name: dict[str, Server] = field(default_factory=dict)
    settings: ServiceSettings = field(default_factory=ServiceSettings)

    def __getitem__(self, name: str) -> Server:
        return self.by_name[name]

    def headers(self, *roles: str, sub: str = "bench") -> dict[str, str]:
        token = issue_token(self.settings, sub=sub, roles=list(roles), scope=[ALL_NODES])
        return {"Authorization": f"Bearer {token}"}

    def topic(self, contract_topic: str) -> str:
        return f"{self.run}.{contract_topic}"


def _environment(name: str, schema: str, dsn: str, bootstrap: str, run: str) -> dict[str, str]:
    upper = name.upper()
    env = {k: v for k, v in os.environ.items() if not k.startswith(f"{upper}_")}
    env.update(
        {
            f"{upper}_DATABASE_URL": dsn,
            f"{upper}_DB_SCHEMA": schema,
            "GRID_KAFKA_BOOTSTRAP": bootstrap,
            "GRID_TOPIC_PREFIX": f"{run}.",
            "GRID_LOG_LEVEL": "WARNING",
        }
    )
    return env


async def _wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited; see {server.log}")
            try:
                if (await client.get(f"{server.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} not ready in {timeout}s; see {server.log}")
            await asyncio.sleep(0.2)


def _spawn(factory: str, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


async def _delete_topics(bootstrap: str, run: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"{run}.")]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


@dataclass(frozen=True)
class Spec:
    """A server to run: a service (`registry`, ...) or another ASGI factory (`app`).

    `schema` None: a fresh `<run>_<name>` schema, migrated, dropped at the end. A given schema
    is migrated when `migrate` and is never dropped here (a data set kept between runs).
    """

    name: str
    app: str | None = None
    schema: str | None = None
    migrate: bool = True
    env: dict[str, str] = field(default_factory=dict)

    @property
    def factory(self) -> str:
        return self.app or f"services.{self.name}.main:app"


@asynccontextmanager
async def running(
    names: list[str | Spec],
    dsn: str,
    bootstrap: str,
    prefix: str = "bench",
    run: str | None = None,
) -> AsyncIterator[Servers]:
    """Migrate and start the servers (in that order), yield them ready, then stop them, drop
    the schemas made for this run and delete this run's topics."""
    run = run or unique(prefix)
    servers = Servers(run, dsn, bootstrap)
    specs = [n if isinstance(n, Spec) else Spec(n) for n in names]
    fresh: list[str] = []
    logs = Path(tempfile.mkdtemp(prefix=f"{run}-"))
    try:
        for spec in specs:
            schema = spec.schema or f"{run}_{spec.name}"
            if spec.schema is None:
                fresh.append(schema)
            if spec.migrate:
                await upgrade_async(spec.name, dsn, schema)
            port = free_port()
            log = logs / f"{spec.name}.log"
            env = {**_environment(spec.name, schema, dsn, bootstrap, run), **spec.env}
            process = _spawn(spec.factory, port, log, env)
            servers.by_name[spec.name] = Server(spec.name, schema, port, process, log)
        for server in servers.by_name.values():
            await _wait_ready(server)
        yield servers
    finally:
        for server in servers.by_name.values():
            _stop(server)
        for schema in fresh:
            await drop_schema(dsn, schema)
        await _delete_topics(bootstrap, run)


def client(server: Server, **kwargs: Any) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=server.url, timeout=120.0, limits=limits, **kwargs)
