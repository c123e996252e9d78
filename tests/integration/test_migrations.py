"""Two replicas starting together migrate the same fresh schema without colliding."""

from __future__ import annotations

import asyncio
import os
import sys

from shared.testing import ROOT, Infra, drop_schema, unique


async def test_concurrent_migration_runs_on_a_fresh_schema_all_succeed(infra: Infra) -> None:
    schema = unique("mig")
    env = {
        **os.environ,
        "REPORTING_DATABASE_URL": infra.pg_dsn,
        "REPORTING_DB_SCHEMA": schema,
    }
    try:
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.migrations",
                "reporting",
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            for _ in range(3)
        ]
        outputs = await asyncio.gather(*(r.communicate() for r in runs))
        failed = [
            out.decode()[-2000:] for r, (out, _) in zip(runs, outputs, strict=True) if r.returncode
        ]
        assert failed == []
    finally:
        await drop_schema(infra.pg_dsn, schema)
