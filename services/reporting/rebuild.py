"""Rebuild all of reporting's read models from the start of the topics and swap them in.

    python -m services.reporting.rebuild [--keep-old] [--batch 20000]

reads the `REPORTING_*` / `GRID_*` settings like the service, rebuilds every read model of
`CONSUMES` into a fresh schema migrated with reporting's migrations (whatever they and
`CONSUMES` hold at the time), swaps it in while the service keeps answering (see
shared/rebuild.py), and prints the outcome as JSON. `POST /v1/admin/rebuild` does the same
inside the service. The live service may run or not; its consumers pause only for the swap.
Either way the status goes to the schema's `rebuild_runs`, where `GET /v1/admin/rebuild/{id}`
on any replica reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.reporting.config import ReportingSettings
from shared.http import Part
from shared.migrations import upgrade_async
from shared.rebuild import ReadModel, Rebuild, Rebuilds
from shared.runtime import WithPool, consumer_name
from shared.settings import ServiceSettings

Consumes = Sequence[tuple[str, Sequence[str], Any]]


def read_models(settings: ServiceSettings, consumes: Consumes) -> list[ReadModel]:
    models = []
    for name, topics, handler in consumes:
        if isinstance(handler, WithPool):
            raise ValueError(f"{name} reacts with commands; replaying it is not a rebuild")
        models.append(
            ReadModel(
                consumer_name(settings, name), tuple(settings.topic(t) for t in topics), handler
            )
        )
    return models


def reporting_rebuild(settings: ServiceSettings, consumes: Consumes, **options: Any) -> Rebuild:
    async def migrate(schema: str) -> None:
        await upgrade_async("reporting", settings.database_url, schema)

    return Rebuild(
        dsn=settings.database_url,
        schema=settings.schema_name,
        bootstrap=settings.kafka,
        models=read_models(settings, consumes),
        migrate=migrate,
        **options,
    )


def operations(settings: ServiceSettings, consumes: Consumes) -> list[Part]:
    """The lifespan part (after the pool's) behind `/v1/admin/rebuild`: `app.state.rebuilds`
    (statuses from `rebuild_runs`, whichever replica started them) and
    `app.state.start_rebuild()`."""

    @asynccontextmanager
    async def rebuilds(app: FastAPI) -> AsyncIterator[None]:
        running = Rebuilds(app.state.pool)

        async def start() -> Any:
            async def refresh_connections() -> None:
                await app.state.pool.expire_connections()

            rebuild = reporting_rebuild(settings, consumes, on_swapped=refresh_connections)
            return await running.start(rebuild)

        app.state.rebuilds, app.state.start_rebuild = running, start
        try:
            yield
        finally:
            await running.aclose()

    return [rebuilds]


async def main(argv: Sequence[str]) -> int:
    from services.reporting.main import CONSUMES  # the service module imports this one

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep-old", action="store_true", help="keep <schema>_old_<id>")
    parser.add_argument("--batch", type=int, default=20_000, help="records per transaction")
    args = parser.parse_args(argv)
    settings = ReportingSettings()
    rebuild = reporting_rebuild(settings, CONSUMES, keep_old=args.keep_old, batch=args.batch)
    try:
        status = await rebuild.run()
    except Exception:  # noqa: BLE001 - the status says what failed
        print(rebuild.status.model_dump_json(by_alias=True, indent=2))
        return 1
    print(status.model_dump_json(by_alias=True, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
