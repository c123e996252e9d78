"""The chaos suite's session: its own PostgreSQL and Kafka, two replicas of every service,
one seeded district whose ledger the faults keep adding to (tests/chaos/runner.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.chaos.runner import Chaos

_SESSION: list[Chaos] = []


# module scope: the private servers and the eight processes go away as soon as the faults
# are done, instead of running beside the rest of `make test`
@pytest.fixture(scope="module")
async def chaos() -> AsyncIterator[Chaos]:
    session = Chaos()
    _SESSION.append(session)
    try:
        await session.setup()
        yield session
    finally:
        await session.teardown()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for session in _SESSION:
        if session.results:
            terminalreporter.section("chaos: recovery per fault")
            terminalreporter.write_line(session.table())
            terminalreporter.write_line(
                f"set up in {session.setup_seconds:.0f}s;"
                " figures in tests/chaos/results/latest.json"
            )
