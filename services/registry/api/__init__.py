"""The registry's HTTP routers, one module per resource family."""

from __future__ import annotations

from fastapi import APIRouter

from services.registry.api.chains import ROUTERS as CHAIN_ROUTERS
from services.registry.api.imports import imports
from services.registry.api.people import audit, households, persons, vehicles
from services.registry.api.places import nodes
from shared.ops import router as ops

ROUTERS: list[APIRouter] = [
    nodes,
    households,
    persons,
    vehicles,
    audit,
    imports,
    *CHAIN_ROUTERS,
    ops,
]
