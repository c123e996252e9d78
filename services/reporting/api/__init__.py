"""The reporting service's HTTP routers, one module per read model."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api.places import summaries

ROUTERS: list[APIRouter] = [summaries]
