"""Every error an operation can answer, declared in its OpenAPI document as a problem.

FastAPI declares what a route's signature shows, and a 422 in a shape this API never sends.
The errors a service really answers come from the layers every route shares: the token check
(401, 403), lookups of what a caller names (404), the event store and If-Match (409, 412), the
body limit (413), validation (422), a body that is not text (400) and a dependency that is down
(503). So they are declared here, from the facts those layers act on (the route's method, its
parameters and whether it reads a token), once for every service; the fuzz test in
`tests/fuzz` holds each document to what its service answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute

from shared.auth import current_principal
from shared.problems import PROBLEM_JSON

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_METRICS = "/metrics"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `type` is stable, `errors` names each bad field",
    "type": "object",
    "required": ["type", "code", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "code": {"type": "string", "description": "the stable last part of `type`"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8 text)",
    401: "No bearer token, or one that is invalid or expired",
    403: "The token's roles or scope do not reach this",
    404: "Nothing with the id named, or nothing the caller may see",
    409: "Conflicts with the current state, another writer, or a retry still in flight",
    412: "If-Match names a version other than the current one",
    413: "The body is over the size limit",
    422: "Invalid input: `errors` names each field and why",
    503: "A dependency is unavailable: retry after `Retry-After` (same Idempotency-Key)",
}


def install(app: FastAPI) -> None:
    """Declare the problems as the document is generated (FastAPI makes it on first use)."""
    generate = app.openapi
    declared: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not declared or declared[0] is not schema:
            declare_problems(schema, app.routes)
            declared[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_problems(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for route in _api_routes(routes):
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            if route.path_format == OPEN_METRICS:
                _metrics_as_text(operation)
                continue
            for status in sorted(answered(method, route.dependant)):
                _declare(operation["responses"], status)
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def answered(method: str, dependant: Dependant) -> set[int]:
    """The error statuses a route answers, from what it reads."""
    statuses = {503}
    if method in WRITES:
        statuses |= {400, 409, 412, 413, 422}
    if dependant.path_params or dependant.query_params or dependant.body_params:
        statuses.add(422)  # and any of them may name something that does not exist:
        statuses.add(404)  # an id in the path, a place to list under, a document to look up
    if current_principal in _calls(dependant):
        statuses |= {401, 403}
    return statuses


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    for context in routing.iter_route_contexts(routes):
        if isinstance(context.original_route, routing.APIRoute) and context.include_in_schema:
            yield context


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _declare(responses: dict[str, Any], status: int) -> None:
    response = responses.setdefault(str(status), {})
    response.setdefault("description", DESCRIPTIONS[status])
    if status == 422:  # FastAPI's own model is not what the problem handler sends
        response["description"] = DESCRIPTIONS[422]
    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    if status == 503:
        response["headers"] = {
            "Retry-After": {"description": "seconds", "schema": {"type": "integer"}}
        }


def _metrics_as_text(operation: dict[str, Any]) -> None:
    operation["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
