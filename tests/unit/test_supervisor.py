"""The supervisor keeps every background task running and says when one stopped working."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.supervisor import Backoff, Beat, Supervised, Supervisor


async def until(check: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_backoff_doubles_up_to_its_cap_with_jitter_below_the_ceiling() -> None:
    backoff = Backoff(first=0.5, cap=4.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff.delay(3, rand=lambda: 0.0) == pytest.approx(0.4)  # a tenth of the ceiling


async def test_a_task_that_raises_is_started_again_until_it_is_stopped() -> None:
    runs = 0

    async def flaky(stop: asyncio.Event, beat: Beat) -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise ConnectionError("connection is closed")
        beat()
        await stop.wait()

    supervisor = Supervisor(backoff=Backoff(0.001, 0.01))
    task = supervisor.spawn("consumer", flaky)
    await until(lambda: runs == 4 and task.health.up)
    assert task.health.restarts == 3
    assert supervisor.healthy()
    await supervisor.stop("consumer")
    assert not task.health.up


async def test_a_task_that_returns_without_being_stopped_is_started_again() -> None:
    runs = 0

    async def returns(stop: asyncio.Event, beat: Beat) -> None:
        nonlocal runs
        runs += 1

    task = Supervised("relay", returns, backoff=Backoff(0.001, 0.01))
    task.start()
    await until(lambda: runs >= 3)
    await task.stop()
    assert task.health.last_error == "ended without being stopped"


async def test_a_task_without_success_for_too_long_makes_the_process_unhealthy() -> None:
    now = [1000.0]

    async def stuck(stop: asyncio.Event, beat: Beat) -> None:
        raise OSError("database unreachable")

    supervisor = Supervisor(backoff=Backoff(10, 10), stale_after=60)
    task = Supervised("scheduler", stuck, backoff=supervisor.backoff, clock=lambda: now[0])
    supervisor.tasks["scheduler"] = task
    task.start()
    await until(lambda: task.health.restarts == 1)
    assert supervisor.healthy(now=1030)
    assert not supervisor.healthy(now=1061)
    report = supervisor.report(now=1061)["scheduler"]
    assert report["stale"] is True and report["up"] is False
    assert report["last_error"] == "OSError: database unreachable"
    await supervisor.stop("scheduler")


async def test_failures_are_logged_once_per_backoff_step(caplog: pytest.LogCaptureFixture) -> None:
    async def down(stop: asyncio.Event, beat: Beat) -> None:
        raise OSError("broker unreachable")

    task = Supervised("relay", down, backoff=Backoff(0.01, 0.02))
    with caplog.at_level(logging.WARNING, logger="shared.supervisor"):
        task.start()
        await until(lambda: task.health.restarts >= 5)
        await task.stop()
    lines = [r for r in caplog.records if r.name == "shared.supervisor"]
    assert len(lines) == task.health.restarts
    assert "5 since its last success" in lines[4].getMessage()


async def test_stopping_never_raises_whatever_the_task_did() -> None:
    async def ignores_stop(stop: asyncio.Event, beat: Beat) -> None:
        await asyncio.sleep(3600)

    task = Supervised("hung", ignores_stop)
    task.start()
    await asyncio.sleep(0)
    await task.stop(timeout=0.05)  # cancelled after the timeout, no exception
    assert not task.health.up
