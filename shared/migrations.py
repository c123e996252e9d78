"""Alembic, one schema per service: `python -m shared.migrations <service>` or `upgrade()`.

Each service keeps its revisions in `services/<name>/migrations/versions`; its `env.py` calls
`run_env()`. The version table lives in the service's own schema.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import advisory_key, check_schema_name

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, dsn: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.attributes["dsn"] = dsn
    cfg.attributes["schema"] = check_schema_name(schema)
    return cfg


def upgrade(service: str, dsn: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, dsn, schema), revision)


async def upgrade_async(service: str, dsn: str, schema: str) -> None:
    """Upgrade from inside a running event loop (Alembic's API is synchronous)."""
    await asyncio.to_thread(upgrade, service, dsn, schema)


def _sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


# One migration run at a time per database: two runners on a fresh schema (two replicas
# starting together) would both create the same types and tables and one would fail.
MIGRATION_LOCK = advisory_key("grid-migrations")


def _migrate(connection: Connection, schema: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    try:
        _migrate_locked(connection, schema)
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()


def _migrate_locked(connection: Connection, schema: str) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS ltree SCHEMA public"))
    connection.execute(text(f"SET search_path TO {schema}, public"))
    connection.commit()
    context.configure(
        connection=connection, version_table_schema=schema, transaction_per_migration=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_env() -> None:
    """Body of every service's `migrations/env.py`."""
    cfg = context.config
    dsn, schema = cfg.attributes["dsn"], cfg.attributes["schema"]

    async def run() -> None:
        engine = create_async_engine(_sqlalchemy_url(dsn))
        try:
            async with engine.connect() as conn:
                await conn.run_sync(_migrate, schema)
        finally:
            await engine.dispose()

    asyncio.run(run())


def main(argv: list[str]) -> None:
    from shared.settings import ServiceSettings

    for service in argv or ["registry", "screening", "checkpoint", "reporting"]:
        settings = ServiceSettings(_env_prefix=f"{service.upper()}_", service=service)
        upgrade(service, settings.database_url, settings.schema_name)
        print(f"migrated {service} (schema {settings.schema_name})")


if __name__ == "__main__":
    main(sys.argv[1:])
