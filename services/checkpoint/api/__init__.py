"""The checkpoint service's HTTP routers, one module per resource family."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
