"""Checkpoint's views of `screening.events`: risk areas, and who is under home observation or
quarantine from when to when.

Watch periods keep their start and end, so a crossing is judged by the watch state at its
own time (`domain.exposure`). How screening's watch events map onto periods:

* `ObservationStarted` opens an observation period of the subject.
* `QuarantineOrdered` opens a quarantine period (id = the quarantine id) and ends any open
  observation of the subject at the quarantine's start: the person moved on to quarantine.
* `QuarantineReleased` ends the named quarantine (no quarantine id: the open observation).
* `QuarantineTransferred` to a hospital ends the period (the person is no longer at home);
  to a centralized site keeps a quarantine open there (a transfer from observation opens one).
* `QuarantineExtended` moves the planned end; a period with a planned end in the past is
  still held until screening releases it.

Events of one subject's watch stream arrive in version order (consumer base); inserts ignore
rows already there, so a re-delivered event changes nothing.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.screening import (
    ObservationStarted,
    QuarantineExtended,
    QuarantineOrdered,
    QuarantineReleased,
    QuarantineTransferred,
    RiskAreaDeclared,
    RiskAreaLifted,
)
from shared.envelope import Envelope

OPEN_PERIOD = "INSERT INTO watch_periods (id, subject_id, kind, type, starts_at, planned_end)"
END_OBSERVATION = (
    "UPDATE watch_periods SET ended_at = GREATEST($2, starts_at), end_reason = $3"
    " WHERE subject_id = $1 AND kind = 'observation' AND ended_at IS NULL"
)


def _period_id(env: Envelope) -> str:
    return f"{env.stream_id}#{env.version}"


async def on_risk_area_declared(conn: Any, env: Envelope, e: RiskAreaDeclared) -> None:
    await conn.execute(
        "INSERT INTO risk_areas (id, name, level, region_codes, valid_from, valid_to)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        e.area_id,
        e.name,
        e.level,
        e.region_codes,
        e.valid_from,
        e.valid_to,
    )


async def on_risk_area_lifted(conn: Any, env: Envelope, e: RiskAreaLifted) -> None:
    await conn.execute("UPDATE risk_areas SET lifted_on = $2 WHERE id = $1", e.area_id, e.lifted_on)


async def on_observation_started(conn: Any, env: Envelope, e: ObservationStarted) -> None:
    await conn.execute(
        f"{OPEN_PERIOD} VALUES ($1, $2, 'observation', NULL, $3, $4) ON CONFLICT DO NOTHING",
        _period_id(env),
        e.subject_id,
        e.starts_at,
        e.planned_end,
    )


async def on_quarantine_ordered(conn: Any, env: Envelope, e: QuarantineOrdered) -> None:
    await conn.execute(END_OBSERVATION, e.subject_id, e.starts_at, "quarantined")
    await conn.execute(
        f"{OPEN_PERIOD} VALUES ($1, $2, 'quarantine', $3, $4, $5) ON CONFLICT DO NOTHING",
        e.quarantine_id,
        e.subject_id,
        e.type,
        e.starts_at,
        e.planned_end,
    )


async def on_quarantine_extended(conn: Any, env: Envelope, e: QuarantineExtended) -> None:
    await conn.execute(
        "UPDATE watch_periods SET planned_end = $2 WHERE id = $1", e.quarantine_id, e.planned_end
    )


async def _end(conn: Any, quarantine_id: str | None, subject_id: str, at: Any, why: str) -> None:
    if quarantine_id is None:
        await conn.execute(END_OBSERVATION, subject_id, at, why)
        return
    await conn.execute(
        "UPDATE watch_periods SET ended_at = GREATEST($2, starts_at), end_reason = $3"
        " WHERE id = $1 AND ended_at IS NULL",
        quarantine_id,
        at,
        why,
    )


async def on_quarantine_released(conn: Any, env: Envelope, e: QuarantineReleased) -> None:
    await _end(conn, e.quarantine_id, e.subject_id, e.released_at, f"released: {e.reason}")


async def on_quarantine_transferred(conn: Any, env: Envelope, e: QuarantineTransferred) -> None:
    if e.to == "hospital":
        await _end(conn, e.quarantine_id, e.subject_id, e.transferred_at, "hospital")
        return
    if e.quarantine_id is not None:
        await conn.execute(
            "UPDATE watch_periods SET type = 'centralized' WHERE id = $1", e.quarantine_id
        )
        return
    await conn.execute(END_OBSERVATION, e.subject_id, e.transferred_at, "centralized")
    await conn.execute(
        f"{OPEN_PERIOD} VALUES ($1, $2, 'quarantine', 'centralized', $3, NULL)"
        " ON CONFLICT DO NOTHING",
        _period_id(env),
        e.subject_id,
        e.transferred_at,
    )


HANDLERS: dict[type[Any], Any] = {
    RiskAreaDeclared: on_risk_area_declared,
    RiskAreaLifted: on_risk_area_lifted,
    ObservationStarted: on_observation_started,
    QuarantineOrdered: on_quarantine_ordered,
    QuarantineExtended: on_quarantine_extended,
    QuarantineReleased: on_quarantine_released,
    QuarantineTransferred: on_quarantine_transferred,
}
