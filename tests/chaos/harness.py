"""The chaos suite's own world: a private PostgreSQL cluster and Kafka broker, two replicas of
every service as real processes, and an orchestrator that does what a container platform
would (start a process again when it exits, restart one whose `/healthz` keeps failing).

Nothing here touches the servers the rest of the test suite uses: the private servers are
started by `deploy/local/infra.sh` under their own state directory and ports, wiped at the
start and at the end of every session. A later deploy issue reuses these pieces.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
INFRA_SH = ROOT / "deploy" / "local" / "infra.sh"
RESULTS = Path(__file__).resolve().parent / "results"

SERVICES = ("registry", "screening", "checkpoint", "reporting")
PUBLISHERS = ("registry", "screening", "checkpoint")
REPLICAS = ("a", "b")
# environment a spawned service must not inherit from whoever runs the tests
FOREIGN_ENV = ("GRID_", "TEST_", *(f"{s.upper()}_" for s in SERVICES))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    """Every knob of the suite, from `CHAOS_*` environment variables."""

    state_dir: Path = Path(os.environ.get("CHAOS_STATE_DIR", "/var/tmp/grid-epi-chaos"))
    pg_port: int = _env_int("CHAOS_PG_PORT", 56432)
    kafka_port: int = _env_int("CHAOS_KAFKA_PORT", 60092)
    kafka_controller_port: int = _env_int("CHAOS_KAFKA_CONTROLLER_PORT", 60093)
    # replica b of service i listens on port_base + 10 * i + 1, replica a on ... + 0
    port_base: int = _env_int("CHAOS_PORT_BASE", 56100)
    partitions: int = _env_int("CHAOS_TOPIC_PARTITIONS", 3)
    seed: int = _env_int("CHAOS_SEED", 2020)
    lease_seconds: float = _env_float("CHAOS_LEASE_SECONDS", 3.0)
    # load around each fault: writes per second, seconds before and after the fault
    rate: float = _env_float("CHAOS_RATE", 20.0)
    load_before: float = _env_float("CHAOS_LOAD_BEFORE", 6.0)
    load_after: float = _env_float("CHAOS_LOAD_AFTER", 6.0)
    # how long a fault keeps a server down (PostgreSQL stopped, Kafka dead) and a relay frozen
    outage_seconds: float = _env_float("CHAOS_OUTAGE_SECONDS", 5.0)
    freeze_seconds: float = _env_float(
        "CHAOS_FREEZE_SECONDS", 3 * _env_float("CHAOS_LEASE_SECONDS", 3.0)
    )
    # seconds from a fault's injection until everything must be consistent again
    recovery_deadline: float = _env_float("CHAOS_RECOVERY_DEADLINE", 90.0)
    # a write is retried (same id, same body) for this long before the client gives up
    write_patience: float = _env_float("CHAOS_WRITE_PATIENCE", 240.0)
    request_timeout: float = _env_float("CHAOS_REQUEST_TIMEOUT", 5.0)
    # under load, "caught up" means every event and record older than this has gone through
    staleness: float = _env_float("CHAOS_STALENESS", 2.0)
    # the orchestrator: seconds before an exited process is started again, and the liveness
    # probe (every `probe_period` s; restarted after `probe_failures` failures in a row)
    restart_delay: float = _env_float("CHAOS_RESTART_DELAY", 2.0)
    probe_period: float = _env_float("CHAOS_PROBE_PERIOD", 3.0)
    probe_failures: int = _env_int("CHAOS_PROBE_FAILURES", 6)
    start_timeout: float = _env_float("CHAOS_START_TIMEOUT", 90.0)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/grid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def port(self, service: str, replica: str) -> int:
        return self.port_base + 10 * SERVICES.index(service) + REPLICAS.index(replica)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the private servers ------------------------------------------------------------------------


class PrivateInfra:
    """PostgreSQL and Kafka of this suite alone, through `deploy/local/infra.sh`."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
        env.update(
            GRID_STATE_DIR=str(self.config.state_dir),
            GRID_PG_PORT=str(self.config.pg_port),
            GRID_KAFKA_PORT=str(self.config.kafka_port),
            GRID_KAFKA_CONTROLLER_PORT=str(self.config.kafka_controller_port),
        )
        return env

    def infra(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(INFRA_SH), command],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"infra.sh {command} failed ({done.returncode}):\n{done.stdout}")

    def up(self) -> None:
        self.infra("up")

    def reset(self) -> None:
        self.infra("reset")

    @property
    def pg_data(self) -> Path:
        return self.config.state_dir / "pg" / "data"

    @property
    def pg_log(self) -> Path:
        return self.config.state_dir / "pg" / "postgres.log"

    @staticmethod
    def pg_bindir() -> Path:
        dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not dirs:
            raise RuntimeError("no /usr/lib/postgresql/*/bin")
        return dirs[-1]

    def pg_ctl(self, *args: str) -> None:
        """`pg_ctl ARGS -D <data>` as the postgres user (PostgreSQL refuses root)."""
        cmd = [str(self.pg_bindir() / "pg_ctl"), *args, "-D", str(self.pg_data)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(
            cmd,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}")

    def pg_restart_fast(self) -> None:
        self.pg_ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", str(self.pg_log))

    def pg_stop_immediate(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w", "-t", "60")

    def pg_start(self) -> None:
        self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.pg_log))

    def kafka_pid(self) -> int | None:
        path = self.config.state_dir / "kafka" / "kafka.pid"
        try:
            pid = int(path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    def kafka_kill(self) -> None:
        pid = self.kafka_pid()
        if pid is None:
            raise RuntimeError("the private Kafka broker is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def kafka_start(self) -> None:
        """Start the broker again (infra.sh up leaves the running PostgreSQL alone)."""
        self.up()


# -- the service processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """One set of schemas and topics. A fault that leaves the system inconsistent spoils its
    generation; the next fault starts on a fresh one, so faults are judged one by one."""

    number: int

    @property
    def topic_prefix(self) -> str:
        return f"c{self.number}."

    def schema(self, service: str) -> str:
        return f"c{self.number}_{service}"

    def topic(self, service: str) -> str:
        return f"{self.topic_prefix}{service}.events"

    def relay(self, service: str) -> str:
        return f"{self.schema(service)}.relay"

    def consumer(self, service: str, name: str) -> str:
        return f"{self.topic_prefix}{self.schema(service)}.{name}"


@dataclass
class Secrets:
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    id_hmac_key: str = field(default_factory=lambda: secrets.token_hex(32))
    pii_keys: str = field(
        default_factory=lambda: "chaos1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    )


class Replica:
    """One service process: `uvicorn --factory services.<service>.main:app`."""

    def __init__(
        self, config: Config, service: str, replica: str, logs: Path, secrets_: Secrets
    ) -> None:
        self.config = config
        self.service = service
        self.replica = replica
        self.port = config.port(service, replica)
        self.log_path = logs / f"{service}-{replica}.log"
        self.secrets = secrets_
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation: Generation | None = None
        self.starts = 0
        self.started_at = 0.0  # time.monotonic() of the last start
        self.stopped_by_fault = False  # SIGSTOPped on purpose: the probe leaves it be

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def replica_id(self) -> str:
        return f"chaos-{self.name}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self, generation: Generation) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        p = self.service.upper()
        env.update(
            {
                f"{p}_DATABASE_URL": self.config.dsn,
                f"{p}_DB_SCHEMA": generation.schema(self.service),
                f"{p}_PORT": str(self.port),
                f"{p}_RELAY_LEASE_SECONDS": str(self.config.lease_seconds),
                f"{p}_RELAY_STANDBY_POLL": "0.5",
                f"{p}_TASK_BACKOFF_MAX": "2",
                f"{p}_TASK_STALE_SECONDS": "60",
                f"{p}_LAG_REFRESH_SECONDS": "5",
                f"{p}_CONSUMER_SESSION_TIMEOUT_MS": "4000",
                f"{p}_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
                "GRID_KAFKA_BOOTSTRAP": self.config.bootstrap,
                "GRID_TOPIC_PARTITIONS": str(self.config.partitions),
                "GRID_TOPIC_PREFIX": generation.topic_prefix,
                "GRID_REPLICA_ID": self.replica_id,
                "GRID_JWT_SECRET": self.secrets.jwt_secret,
                "GRID_ID_HMAC_KEY": self.secrets.id_hmac_key,
                "GRID_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.service == "registry":
            env["REGISTRY_PII_KEYS"] = self.secrets.pii_keys
        if self.service == "screening":
            env["SCREENING_SCHEDULER_INTERVAL"] = "5"
        return env

    def start(self, generation: Generation) -> None:
        assert not self.alive, f"{self.name} runs already"
        self.generation = generation
        self.starts += 1
        self.started_at = time.monotonic()
        self.stopped_by_fault = False
        with self.log_path.open("ab") as out:
            out.write(
                f"\n===== chaos harness: start #{self.starts} of {self.name} "
                f"(generation {generation.number}) at {time.strftime('%H:%M:%S')} =====\n".encode()
            )
            out.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    f"services.{self.service}.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=self.env(generation),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (RESULTS / "pids").mkdir(parents=True, exist_ok=True)
        (RESULTS / "pids" / self.name).write_text(str(self.proc.pid))

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.alive:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


def reap_leftovers() -> None:
    """Processes an aborted earlier session of this suite left running (by their pid files,
    and only if they still are our uvicorn services)."""
    pids = RESULTS / "pids"
    if not pids.is_dir():
        return
    for f in pids.iterdir():
        try:
            pid = int(f.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if b"uvicorn" in cmdline and b"services." in cmdline:
            log(f"stopping leftover {f.name} (pid {pid}) of an earlier session")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        f.unlink(missing_ok=True)


@dataclass
class Action:
    """Something the orchestrator did on its own."""

    at: float  # time.monotonic()
    replica: str
    what: str  # "started again" | "restarted (liveness)"
    why: str


class Cluster:
    """Two replicas of every service on the private servers, and the orchestrator."""

    def __init__(self, config: Config, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.secrets = Secrets()
        self.replicas = {
            s: [Replica(config, s, r, logs, self.secrets) for r in REPLICAS] for s in SERVICES
        }
        self.generation = Generation(1)
        self.actions: list[Action] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._failures: dict[str, int] = {}
        # the replicas requests are routed to: those whose /readyz answered last time (like a
        # Service in front of ready pods); every replica until the first probe
        self.in_rotation: set[str] = {r.name for r in self.all()}
        self._http = httpx.AsyncClient(timeout=2.0)

    def all(self) -> Iterator[Replica]:
        for rs in self.replicas.values():
            yield from rs

    def by_replica_id(self, holder: str) -> Replica | None:
        """The replica a lease holder names (`<GRID_REPLICA_ID>` or `<GRID_REPLICA_ID>#...`)."""
        replica_id = holder.split("#", 1)[0]
        return next((r for r in self.all() if r.replica_id == replica_id), None)

    def by_pid(self, pid: int) -> Replica | None:
        return next((r for r in self.all() if r.pid == pid and r.alive), None)

    # -- lifecycle ----------------------------------------------------------------------------

    def migrate(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        for s in SERVICES:
            env[f"{s.upper()}_DATABASE_URL"] = self.config.dsn
            env[f"{s.upper()}_DB_SCHEMA"] = self.generation.schema(s)
        # the migrations build each service's settings: the cluster's own secrets, as in
        # production (no development mode)
        env["GRID_JWT_SECRET"] = self.secrets.jwt_secret
        env["GRID_ID_HMAC_KEY"] = self.secrets.id_hmac_key
        env["REGISTRY_PII_KEYS"] = self.secrets.pii_keys
        done = subprocess.run(
            [sys.executable, "-m", "shared.migrations", *SERVICES],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{done.stdout[-4000:]}")

    async def start(self) -> None:
        for r in self.all():
            r.start(self.generation)
        await self.wait_ready(list(self.all()), self.config.start_timeout)
        self.in_rotation = {r.name for r in self.all()}
        self._tasks = [
            asyncio.create_task(self._orchestrate(), name="chaos-orchestrator"),
            asyncio.create_task(self._route(), name="chaos-readiness"),
        ]

    async def wait_ready(self, replicas: list[Replica], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(replicas)
        while pending:
            still = []
            for r in pending:
                if not r.alive:
                    raise RuntimeError(
                        f"{r.name} exited while starting (code {r.proc and r.proc.poll()}):\n"
                        + r.log_tail(60)
                    )
                if not await self.ready(r):
                    still.append(r)
            pending = still
            if pending and time.monotonic() > deadline:
                tails = "\n\n".join(f"--- {r.name} ---\n{r.log_tail(40)}" for r in pending)
                raise RuntimeError(
                    f"not ready after {timeout:.0f}s: {[r.name for r in pending]}\n{tails}"
                )
            if pending:
                await asyncio.sleep(0.5)

    async def restarted(self, r: Replica, starts: int) -> None:
        """Until the orchestrator has started `r` again (after `starts` starts)."""
        while r.starts == starts:  # noqa: ASYNC110 - the orchestrator is a poller too
            await asyncio.sleep(0.2)

    async def ready(self, r: Replica) -> bool:
        try:
            return (await self._http.get(f"{r.url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def healthy(self, r: Replica) -> bool:
        try:
            return (await self._http.get(f"{r.url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in self.all()))

    async def close(self) -> None:
        await self.stop()
        await self._http.aclose()

    async def new_generation(self) -> None:
        """Stop everything, and start again on fresh schemas and topics."""
        await self.stop()
        self.generation = Generation(self.generation.number + 1)
        self.actions.clear()
        self.migrate()
        await self.start()

    # -- the orchestrator ---------------------------------------------------------------------

    def routable(self, service: str) -> list[Replica]:
        """Where a request to `service` may go: its replicas in rotation, else all of them."""
        replicas = self.replicas[service]
        return [r for r in replicas if r.name in self.in_rotation] or replicas

    async def _route(self) -> None:
        """Readiness probe every second (1 s timeout): in rotation while /readyz answers."""
        probe = httpx.AsyncClient(timeout=1.0)
        try:
            while True:
                replicas = list(self.all())
                ready = await asyncio.gather(*(self._ready_on(probe, r) for r in replicas))
                self.in_rotation = {r.name for r, ok in zip(replicas, ready, strict=True) if ok}
                await asyncio.sleep(1.0)
        finally:
            await probe.aclose()

    @staticmethod
    async def _ready_on(client: httpx.AsyncClient, r: Replica) -> bool:
        if not r.alive:
            return False
        try:
            return (await client.get(f"{r.url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _orchestrate(self) -> None:
        """Start again what exited; restart what fails its liveness probe too long."""
        exited_at: dict[str, float] = {}
        next_probe = time.monotonic() + self.config.probe_period
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for r in self.all():
                if not r.alive:
                    first = exited_at.setdefault(r.name, now)
                    if now - first >= self.config.restart_delay:
                        code = r.proc.poll() if r.proc else None
                        r.start(self.generation)
                        exited_at.pop(r.name, None)
                        self._failures[r.name] = 0
                        self.actions.append(
                            Action(now, r.name, "started again", f"process exited ({code})")
                        )
                        log(f"orchestrator: {r.name} exited ({code}); started again")
            if now >= next_probe:
                next_probe = now + self.config.probe_period
                await self._probe(now)

    async def _probe(self, now: float) -> None:
        for r in self.all():
            if not r.alive or r.stopped_by_fault:
                continue
            if await self.healthy(r):
                self._failures[r.name] = 0
                continue
            # a process still starting has not failed yet
            if now - r.started_at < self.config.start_timeout / 3:
                continue
            self._failures[r.name] = self._failures.get(r.name, 0) + 1
            if self._failures[r.name] >= self.config.probe_failures:
                self._failures[r.name] = 0
                log(f"orchestrator: {r.name} failed /healthz {self.config.probe_failures}x")
                await asyncio.to_thread(r.kill)
                r.start(self.generation)
                self.actions.append(
                    Action(now, r.name, "restarted (liveness)", "/healthz kept failing")
                )


# -- finding processes behind database sessions --------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _local_port_inodes() -> dict[int, str]:
    """local TCP port -> socket inode, for every IPv4/IPv6 TCP socket on this machine."""
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9:
                ports[int(cols[1].rsplit(":", 1)[1], 16)] = cols[9]
    return ports


def pid_of_client_port(port: int, candidates: list[int]) -> int | None:
    """Which of `candidates` owns the TCP socket whose local port is `port`."""
    inode = _local_port_inodes().get(port)
    if inode is None:
        return None
    for pid in candidates:
        if inode in _socket_inodes(pid):
            return pid
    return None


async def connect(dsn: str, schema: str | None = None, timeout: float = 3.0) -> Any:
    settings = {"search_path": f"{schema},public"} if schema else {}
    return await asyncpg.connect(dsn, timeout=timeout, server_settings=settings)
