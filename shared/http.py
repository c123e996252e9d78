"""The FastAPI app every service is built on: errors, limits, auth, health and metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import openapi, problems
from shared.auth import TokenVerifier
from shared.horizon import RequestHorizon
from shared.idempotency import Fingerprints, fingerprint_key
from shared.input_limits import refuse_control_characters
from shared.logs import correlation_id
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.settings import ServiceSettings
from shared.supervisor import Backoff, Beat, Supervisor

Part = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class BodyLimit:
    """413 for bodies over the limit, whether announced by Content-Length or streamed.

    A streamed (chunked) body is answered the moment it passes the limit: the 413 is sent
    from here and the app is told the client went away, so whatever the app then makes of
    its unfinished body (FastAPI would call it a 400) is never sent."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}  # path prefix -> limit, for uploads such as rosters

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.larger.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._reject(scope, receive, send, max_bytes)
            return
        seen = 0
        started = rejected = False

        async def limited() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(scope, receive, send, max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 is this request's answer
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not rejected:
                raise
            # the app failed on the body it was not given in full: answered already

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problems.problem_response(
            413,
            "payload-too-large",
            "Payload too large",
            f"request body exceeds {max_bytes} bytes",
        )
        await response(scope, receive, send)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def build_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    parts: Sequence[Part] = (),
    description: str = "",
    body_limits: dict[str, int] | None = None,
) -> FastAPI:
    """Assemble a service: `parts` are lifespan pieces (pool, relay, consumers) run in order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _stack(app, list(parts)):
            yield

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.supervisor = Supervisor(
        backoff=Backoff(settings.task_backoff_initial, settings.task_backoff_max),
        stale_after=settings.task_stale_seconds,
    )
    app.state.verifier = TokenVerifier(settings)
    problems.install(app)
    openapi.install(app)
    app.router.dependencies.append(Depends(refuse_control_characters))  # before any route
    service = settings.service

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-correlation-id", "")
        try:
            cid = str(uuid.UUID(incoming))
        except ValueError:
            cid = str(uuid.uuid4())
        token = correlation_id.set(cid)
        start = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            correlation_id.reset(token)
        route = _route_of(request)
        HTTP_REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, request.method, route).observe(time.perf_counter() - start)
        response.headers["X-Correlation-ID"] = cid
        return response

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger=body_limits)
    app.add_middleware(Fingerprints, key=fingerprint_key(settings.id_hmac_key))
    app.add_middleware(RequestHorizon)

    @app.get("/healthz", tags=["ops"], summary="Alive, and every background task recently did work")
    async def healthz(request: Request) -> Response:
        supervisor: Supervisor = request.app.state.supervisor
        tasks = supervisor.report()
        if supervisor.healthy():
            return JSONResponse({"status": "ok", "service": service, "tasks": tasks})
        return problems.problem_response(
            503,
            "unhealthy",
            "Unhealthy",
            f"a background task did no work for over {supervisor.stale_after:g}s",
            request,
            tasks=tasks,
        )

    @app.get("/readyz", tags=["ops"], summary="Can serve its API: PostgreSQL answers")
    async def readyz(request: Request) -> Response:
        # Kafka is not needed to accept writes (they go to the event store) or to answer
        # queries, so a broker outage does not take replicas out of rotation.
        checks: dict[str, bool] = {}
        pool = getattr(request.app.state, "pool", None)
        try:
            checks["postgres"] = pool is not None and await asyncio.wait_for(
                pool.fetchval("SELECT true"), 2.0
            )
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks["postgres"] = False
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return problems.problem_response(
            503, "unavailable", "Not ready", "PostgreSQL is unreachable", request, checks=checks
        )

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


@asynccontextmanager
async def _stack(app: FastAPI, parts: list[Part]) -> AsyncIterator[None]:
    if not parts:
        yield
        return
    async with parts[0](app), _stack(app, parts[1:]):
        yield


def background(
    name: str, factory: Callable[[FastAPI, asyncio.Event, Beat], Coroutine[Any, Any, None]]
) -> Part:
    """A lifespan part running `factory(app, stop, beat)` under the app's supervisor until
    shutdown: restarted with backoff whatever it raises; `beat()` after each unit of work."""

    @asynccontextmanager
    async def part(app: FastAPI) -> AsyncIterator[None]:
        supervisor: Supervisor = app.state.supervisor

        async def body(stop: asyncio.Event, beat: Beat) -> None:
            await factory(app, stop, beat)

        supervisor.spawn(name, body)
        try:
            yield
        finally:
            await supervisor.stop(name)

    return part
