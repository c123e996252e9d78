"""Every problem carries `code`, the stable last part of its `type`, whatever raised it."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from shared import problems
from shared.commands import PreconditionFailed
from shared.errors import DomainError, Refusal
from shared.problems import PROBLEM_BASE, Problem


class Body(BaseModel):
    name: str


def app() -> FastAPI:
    api = FastAPI()
    problems.install(api)
    raised = {
        "problem": Problem(404, "node n1 does not exist"),
        "domain": DomainError("node-occupied", "1 household", refusal=Refusal.CONFLICT),
        "precondition": PreconditionFailed("node:n1", 3),
        "crash": RuntimeError("boom"),
    }

    @api.post("/v1/{kind}")
    async def fail(kind: str, body: Body) -> None:
        raise raised[kind]

    return api


async def test_every_problem_names_its_code_beside_its_type() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = [
            await client.post(f"/v1/{kind}", json={"name": "x"})
            for kind in ("problem", "domain", "precondition", "crash")
        ] + [await client.post("/v1/problem", json={}), await client.get("/nowhere")]
    codes = []
    for r in answers:
        assert r.headers["content-type"] == "application/problem+json", r.text
        body = r.json()
        assert body["type"] == PROBLEM_BASE + body["code"], body
        codes.append(body["code"])
    assert codes == [
        "not-found", "node-occupied", "precondition-failed", "internal-error",
        "validation-error", "not-found",
    ]  # fmt: skip
