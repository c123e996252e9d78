"""Calling the services: dev tokens per role, retries while a service has not yet learnt
what another one published (its views are eventually consistent), batches in chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from shared.auth import ALL_NODES, issue_token
from shared.settings import ServiceSettings

CHUNK = 500
PARALLEL = 8
# the answers that mean "not known here yet": a place, person or household another service
# registered a moment ago and this one has not seen on its topic yet
NOT_YET = ("unknown", "not-found", "not_found", "does not exist")


class ScenarioError(RuntimeError):
    pass


@dataclass
class Services:
    """One client per service (in tests: in-process ASGI clients; else base URLs)."""

    registry: httpx.AsyncClient
    screening: httpx.AsyncClient
    checkpoint: httpx.AsyncClient
    reporting: httpx.AsyncClient

    @classmethod
    def at(cls, registry: str, screening: str, checkpoint: str, reporting: str) -> Services:
        def client(url: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=url, timeout=120)

        return cls(client(registry), client(screening), client(checkpoint), client(reporting))

    def by_name(self) -> dict[str, httpx.AsyncClient]:
        return {
            "registry": self.registry,
            "screening": self.screening,
            "checkpoint": self.checkpoint,
            "reporting": self.reporting,
        }

    async def aclose(self) -> None:
        for c in self.by_name().values():
            await c.aclose()


class Tokens:
    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self.settings = settings or ServiceSettings()
        self.cache: dict[str, dict[str, str]] = {}

    def __call__(self, role: str) -> dict[str, str]:
        if role not in self.cache:
            token = issue_token(
                self.settings,
                sub=f"scenario-{role}",
                roles=[role],
                scope=[ALL_NODES],
                ttl_seconds=6 * 3600,
            )
            self.cache[role] = {"Authorization": f"Bearer {token}"}
        return self.cache[role]


def not_yet(text: str) -> bool:
    return any(marker in text for marker in NOT_YET)


def not_known_yet(result: dict[str, Any]) -> bool:
    code = result.get("code") or ""
    return result.get("refusal") == "not_found" or code.startswith("unknown")


class Caller:
    def __init__(self, tokens: Tokens, patience: float = 60.0) -> None:
        self.tokens, self.patience = tokens, patience
        self.requests = 0
        self.statuses: dict[str, int] = {}

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        role: str,
        body: Any = None,
        *,
        key: str | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, Any] | None = None,
        accept: Sequence[int] = (200, 201),
    ) -> httpx.Response:
        """One request; while the answer says "unknown ..." (another service's news not
        seen yet), ask again until `patience` runs out."""
        headers = dict(self.tokens(role))
        if key is not None:
            headers["Idempotency-Key"] = key
        if content_type is not None:
            headers["Content-Type"] = content_type
        deadline = time.monotonic() + self.patience
        while True:
            self.requests += 1
            r = await client.request(
                method, url, json=body, content=content, headers=headers, params=params
            )
            if r.status_code in accept:
                return r
            if r.status_code in (404, 422) and not_yet(r.text) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                continue
            raise ScenarioError(f"{method} {url}: {r.status_code} {r.text[:500]}")

    async def batch(
        self, client: httpx.AsyncClient, url: str, role: str, items: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Upload `items` in chunks; items refused as not known yet go again. Returns each
        item's result by id."""
        results: dict[str, dict[str, Any]] = {}
        pending = items
        deadline = time.monotonic() + self.patience
        while pending:
            chunks = [pending[i : i + CHUNK] for i in range(0, len(pending), CHUNK)]
            answers = await gather(
                (self.send(client, "POST", url, role, {"items": c}) for c in chunks), PARALLEL
            )
            retry: list[dict[str, Any]] = []
            for chunk, answer in zip(chunks, answers, strict=True):
                for result in answer.json()["results"]:
                    item = chunk[result["index"]]
                    if result["status"] != "error":
                        results[item["id"]] = result
                        status = result["status"]
                        self.statuses[status] = self.statuses.get(status, 0) + 1
                    elif not_known_yet(result) and time.monotonic() < deadline:
                        retry.append(item)
                    else:
                        raise ScenarioError(f"{url} item {item['id']}: {result}")
            if retry:
                await asyncio.sleep(0.2)
            pending = retry
        return results


async def gather(calls: Iterable[Awaitable[Any]], parallel: int = PARALLEL) -> list[Any]:
    """Await `calls` with at most `parallel` in flight; answers in order."""
    gate = asyncio.Semaphore(parallel)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def poll(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    """Ask `check` until it answers something truthy, or give up after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise ScenarioError(f"gave up waiting: {what}")
        await asyncio.sleep(0.25)
