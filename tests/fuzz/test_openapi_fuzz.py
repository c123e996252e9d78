"""Schemathesis over the four services' OpenAPI documents, served over HTTP by uvicorn on real
PostgreSQL and Kafka, as an admin of the whole tree and as an admin of one community: no 500,
and every status, content type and body exactly as declared.

A small seeded world (a community down to a person) lends its ids to a share of the generated
strings, so requests also reach things that exist and their 2xx bodies are checked too.
Deterministic (no example database, no shrinking) so CI sends the same requests every run;
the budget is the examples per operation, sized for a 2-core machine. FUZZ_MAX_EXAMPLES
raises it for a deeper run by hand."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client import REGISTRY

from shared.auth import ALL_NODES
from shared.identity import resident_id_check_digit
from shared.testing import Infra, eventually
from tests.e2e.conftest import Stack, start_stack
from tests.fuzz.conftest import FIGURES

pytestmark = pytest.mark.integration

SERVICES = ["registry", "screening", "checkpoint", "reporting"]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
PARALLEL = 2  # one run generates while the other's requests are served
RUN_TIMEOUT = 600.0  # one service, one caller: far beyond the budget, so a hang still ends
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
COMMUNITY = "fuzz-comm"
DOCUMENT = "11010519900101123" + resident_id_check_digit("11010519900101123")
CALLERS = {"admin of the whole tree": [ALL_NODES], f"admin of {COMMUNITY}": [COMMUNITY]}


@dataclass
class Served:
    stack: Stack
    urls: dict[str, str]


@dataclass
class Run:
    service: str
    caller: str
    report: dict[str, Any]
    output: str
    seconds: float

    @property
    def failures(self) -> int:
        return sum(group["count"] for group in self.report["failures"]) + sum(
            group["count"] for group in self.report["errors"]
        )

    def line(self) -> str:
        ops, cases = self.report["operations"], self.report["test_cases"]
        return (
            f"{self.service:<10} {self.caller:<24} operations {ops['tested']}/{ops['total']}"
            f"  requests {cases['generated']}"
            f"  failures {self.failures}  {self.seconds:.0f} s"
        )


@pytest.fixture
async def served(infra: Infra) -> AsyncIterator[Served]:
    """The four services, each behind its own uvicorn server on a free loopback port."""
    async for stack in start_stack(infra, SERVICES):
        servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        urls: dict[str, str] = {}
        try:
            for name in SERVICES:
                server = uvicorn.Server(
                    uvicorn.Config(
                        stack.apps[name],
                        host="127.0.0.1",
                        port=0,
                        lifespan="off",  # the stack runs each app's lifespan
                        log_level="warning",
                        access_log=False,
                    )
                )
                task = asyncio.create_task(server.serve())
                servers.append((server, task))
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                    await asyncio.sleep(0.01)
                port = server.servers[0].sockets[0].getsockname()[1]
                urls[name] = f"http://127.0.0.1:{port}"
            yield Served(stack, urls)
        finally:
            for server, task in servers:
                server.should_exit = True
                await task


async def _seed(stack: Stack) -> list[str]:
    """A little world the fuzzer can name: a district, a community, a building, a household
    and its person in the registry, with the community known to every other service (so a
    scoped token reaches it). Returns their ids, which schemathesis then uses for a share of
    the strings it generates, so requests also reach things that exist."""
    admin = stack.token("admin")
    writes = [
        ("/v1/nodes", {"id": "fuzz-district", "parent_id": None, "kind": "district", "name": "区"}),
        (
            "/v1/nodes",
            {"id": COMMUNITY, "parent_id": "fuzz-district", "kind": "community", "name": "社区"},
        ),
        (
            "/v1/nodes",
            {"id": "fuzz-building", "parent_id": COMMUNITY, "kind": "building", "name": "1栋"},
        ),
        (
            "/v1/households",
            {"id": "fuzz-household", "parent_id": "fuzz-building", "door_number": "101"},
        ),
        (
            "/v1/persons",
            {
                "id": "fuzz-person",
                "household_id": "fuzz-household",
                "name": "张三",
                "document_number": DOCUMENT,
            },
        ),
    ]
    for path, body in writes:
        r = await stack.registry.post(path, json=body, headers=admin)
        assert r.status_code == 201, r.text
    for name in ("screening", "checkpoint", "reporting"):
        await eventually(
            functools.partial(_knows, stack.apps[name].state.pool, COMMUNITY),
            message=f"{name} never learnt {COMMUNITY}",
        )
    return [body["id"] for _, body in writes]


async def _knows(pool: Any, place: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM places WHERE id = $1", place))


def _config(ids: list[str], workdir: Path) -> Path:
    """schemathesis.toml: a third of the generated strings are the world's ids."""
    path = workdir / "schemathesis.toml"
    path.write_text(
        f"[dictionaries.world]\nvalues = {json.dumps(ids)}\n\n"
        "[generation.dictionaries.string]\n"
        'dictionary = "world"\nprobability = 0.3\n'
    )
    return path


def _requests_served() -> Counter[str]:
    """Requests the services answered so far, by status class ("2xx", "4xx", ...)."""
    served: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name == "grid_http_requests":
            for sample in metric.samples:
                if sample.name == "grid_http_requests_total":
                    served[sample.labels["status"][0] + "xx"] += int(sample.value)
    return served


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _fuzz(
    service: str, url: str, caller: str, token: str, ids: list[str], workdir: Path
) -> Run:
    workdir.mkdir(parents=True)
    config = _config(ids, workdir)
    report = workdir / "report.json"
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        f"--config-file={config}",
        "run",
        f"{url}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--no-shrink",
        "--request-timeout=30",
        f"--header=Authorization: Bearer {token}",
        "--report=json",
        f"--report-json-path={report}",
        "--no-color",
        cwd=workdir,  # where schemathesis keeps its replay store
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    output = out.decode(errors="replace")
    assert report.exists(), output
    return Run(
        service,
        caller,
        json.loads(report.read_text()),
        output,
        time.monotonic() - started,
    )


async def test_every_operation_answers_as_declared(
    served: Served, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ids = await _seed(served.stack)
    figures = request.config.stash[FIGURES]
    slots = asyncio.Semaphore(PARALLEL)
    served_before, started, cpu_before = _requests_served(), time.monotonic(), _children_cpu()

    async def fuzz(n: int, service: str, caller: str) -> Run:
        bearer = served.stack.token("admin", scope=CALLERS[caller])["Authorization"]
        token = bearer.removeprefix("Bearer ")
        async with slots:
            run = await _fuzz(service, served.urls[service], caller, token, ids, tmp_path / str(n))
        figures.append(run.line())
        return run

    plan = [(service, caller) for caller in CALLERS for service in SERVICES]
    runs = await asyncio.gather(*(fuzz(n, s, c) for n, (s, c) in enumerate(plan)))
    operations = sum(r.report["operations"]["total"] for r in runs[: len(SERVICES)])
    cases = sum(r.report["test_cases"]["generated"] for r in runs)
    failures = sum(r.failures for r in runs)
    answered = _requests_served() - served_before
    by_class = ", ".join(f"{n} {status}" for status, n in sorted(answered.items()))
    figures.append(
        f"total: {operations} operations x {len(CALLERS)} callers, {cases} test cases, "
        f"{answered.total()} requests served ({by_class}), {failures} failures, "
        f"{time.monotonic() - started:.0f} s ({_children_cpu() - cpu_before:.0f} s CPU in "
        f"schemathesis); --max-examples {MAX_EXAMPLES}; checks {', '.join(CHECKS)}"
    )
    failed = [
        r
        for r in runs
        if r.failures
        or r.report["exit_code"] != 0
        or r.report["operations"]["tested"] != r.report["operations"]["total"]
    ]
    assert not failed, "\n\n".join(f"{r.line()}\n{r.output}" for r in failed)
