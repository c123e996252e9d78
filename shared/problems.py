"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.commands import PreconditionFailed
from shared.errors import DomainError, Refusal
from shared.eventstore import ConcurrencyError
from shared.faults import TRANSIENT_KINDS, is_transient

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://grid-epi.dev/problems/"

_TITLES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


_REFUSAL_STATUS = {Refusal.INVALID: 422, Refusal.NOT_FOUND: 404, Refusal.CONFLICT: 409}


class Problem(Exception):
    """Raise to answer with a problem document; `slug` is the stable part of `type`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _TITLES.get(status, "error")
        self.title = title or self.slug.replace("-", " ").capitalize()
        self.extra = extra


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "code": slug,  # the stable last part of `type`, on every problem
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.title, exc.detail, request, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "reason": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        status = 422
        return problem_response(
            status,
            "validation-error",
            "Validation error",
            f"{first['field']}: {first['reason']}",
            request,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _TITLES.get(exc.status_code, "error")
        return problem_response(
            exc.status_code,
            slug,
            slug.replace("-", " ").capitalize(),
            str(exc.detail),
            request,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ConcurrencyError)
    async def _conflict(request: Request, exc: ConcurrencyError) -> JSONResponse:
        return problem_response(
            409,
            "conflict",
            "Concurrent modification",
            str(exc),
            request,
            stream_id=exc.stream_id,
        )

    @app.exception_handler(PreconditionFailed)
    async def _precondition(request: Request, exc: PreconditionFailed) -> JSONResponse:
        return problem_response(
            412,
            "precondition-failed",
            "Version mismatch",
            str(exc),
            request,
            current_version=exc.current,
            headers={"ETag": f'"{exc.current}"'},
        )

    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError) -> JSONResponse:
        status = _REFUSAL_STATUS[exc.refusal]
        extra: dict[str, Any] = {"code": exc.code}
        field = exc.field if not exc.field or "." in exc.field else f"body.{exc.field}"
        if field:
            extra["errors"] = [{"field": field, "reason": str(exc)}]
        detail = f"{field}: {exc}" if field else str(exc)
        return problem_response(
            status, exc.code, exc.code.replace("-", " ").capitalize(), detail, request, **extra
        )

    async def _unavailable_or_crash(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            # the database is restarting or a connection died mid-request: nothing was
            # committed that a retry with the same Idempotency-Key would not find
            log.warning("unavailable on %s %s: %s", request.method, request.url.path, exc)
            return problem_response(
                503,
                "unavailable",
                "Service unavailable",
                "a dependency is unavailable; retry the request (with the same Idempotency-Key)",
                request,
                headers={"Retry-After": "1"},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "internal-error",
            "Internal error",
            "the server failed to handle the request",
            request,
        )

    # Driver and network errors by class, so they are answered like any handled error (a
    # handler for Exception itself runs last, and the server then re-raises the error).
    for kind in TRANSIENT_KINDS:
        app.add_exception_handler(kind, _unavailable_or_crash)
    app.add_exception_handler(Exception, _unavailable_or_crash)
