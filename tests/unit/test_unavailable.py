"""A request that meets a database restart answers 503 with Retry-After, not a 500."""

from __future__ import annotations

import asyncpg
import httpx
from asyncpg.exceptions import _base as asyncpg_base
from fastapi import FastAPI

from shared import problems


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.post("/v1/nodes")
    async def create() -> None:
        raise exc

    return app


async def post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # raises what the app lets escape
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/v1/nodes")


async def test_a_connection_killed_by_a_restart_answers_503_with_retry_after() -> None:
    for exc in (
        asyncpg.InterfaceError("connection is closed"),
        asyncpg_base.InternalClientError("cannot switch to state 11; another operation (2)"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        ConnectionResetError("reset by peer"),
    ):
        r = await post(app_raising(exc))
        assert r.status_code == 503, (exc, r.text)
        assert r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/problem+json"


async def test_a_deterministic_database_error_is_still_an_internal_error() -> None:
    r = await post(app_raising(asyncpg.exceptions.UndefinedColumnError("no such column")))
    assert r.status_code == 500
    assert r.json()["type"].endswith("internal-error")
