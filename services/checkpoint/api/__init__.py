"""The checkpoint service's HTTP routers, one module per resource family."""

from __future__ import annotations

from fastapi import APIRouter

from services.checkpoint.api.checkpoints import checkpoints
from services.checkpoint.api.crossings import crossings, ledgers
from shared.ops import router as ops

ROUTERS: list[APIRouter] = [checkpoints, crossings, ledgers, ops]
