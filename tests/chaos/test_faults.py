"""The system heals itself: each fault is injected while a load generator writes through
both replicas of every service, and then nobody helps (only the orchestrator starts an
exited process again). After it, without any manual action, every accepted write must be in
its event store exactly once, every stored event on Kafka, no position published by two relay
holders, nothing dead-lettered, and every figure in reporting what the load generator computed
from its accepted answers. Recovery times are recorded, not asserted tightly (the deadline is
CHAOS_RECOVERY_DEADLINE).

`make test` runs the faults marked `chaos_quick`; `make test-chaos` runs them all.
"""

from __future__ import annotations

import pytest

from tests.chaos.faults import FULL, Fault
from tests.chaos.runner import Chaos

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize(
    "fault",
    [pytest.param(f, id=f.slug, marks=[pytest.mark.chaos_quick] if f.quick else []) for f in FULL],
)
async def test_the_system_heals_itself_after(chaos: Chaos, fault: Fault) -> None:
    result = await chaos.run(fault)
    assert not result.problems, result.explain()
