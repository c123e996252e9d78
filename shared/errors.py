"""Errors pure domain code raises; the HTTP layer turns them into problem documents."""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    INVALID = "invalid"  # 422: the input breaks a rule; `field` names it
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409: the current state does not allow it


class DomainError(Exception):
    """A command the rules refuse; `code` is a stable slug, the message is for people."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        refusal: Refusal = Refusal.INVALID,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.refusal = refusal
        self.field = field
