"""Checkpoints (卡口) and their policies over time. Pure decide/evolve.

A checkpoint guards a place node at one of five levels (county, township, village, natural
village, compound). Its policy says how a crossing is judged (一检二测三登记): residents only
(and which residency types count as residents), which health-code colours pass, whether a
recent nucleic-acid report is required, the fever threshold, and what happens to arrivals
from risk areas. A policy change takes effect from
its `effective_from` on, so a crossing is judged by the policy in force at its own time, even
when it is uploaded days later.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.contracts import EventPayload
from shared.contracts.checkpoint import (
    CheckpointClosed,
    CheckpointLevel,
    CheckpointOpened,
    CheckpointPolicy,
    CheckpointPolicyChanged,
)
from shared.errors import DomainError, Refusal

CHECKPOINT_STREAM = "checkpoint"
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
CLIENT_ID_PATTERN = CLIENT_ID.pattern
THRESHOLD_RANGE = (35.0, 42.0)


def checkpoint_stream(checkpoint_id: str) -> str:
    return f"checkpoint:{checkpoint_id}"


@dataclass(frozen=True)
class Checkpoint:
    id: str
    node_id: str
    name: str
    level: CheckpointLevel
    policy: CheckpointPolicy
    closed: bool
    version: int


@dataclass(frozen=True)
class OpenCheckpoint:
    checkpoint_id: str
    node_id: str
    name: str
    level: CheckpointLevel
    policy: CheckpointPolicy
    node_known: bool


def check_policy(policy: CheckpointPolicy) -> CheckpointPolicy:
    """The policy with its colours and residency types deduplicated (in green, yellow, red and
    resident, temporary, visitor order), or a refusal."""
    low, high = THRESHOLD_RANGE
    if not low <= policy.temperature_threshold <= high:
        raise DomainError(
            "invalid-threshold",
            f"temperature threshold must be within {low}-{high} °C",
            field="policy.temperature_threshold",
        )
    if not policy.health_code_colours:
        raise DomainError(
            "no-colours",
            "name at least one health-code colour that passes",
            field="policy.health_code_colours",
        )
    colours = [c for c in ("green", "yellow", "red") if c in policy.health_code_colours]
    types = [t for t in ("resident", "temporary", "visitor") if t in policy.resident_types]
    return policy.model_copy(update={"health_code_colours": colours, "resident_types": types})


def decide_open(state: Checkpoint | None, cmd: OpenCheckpoint) -> list[EventPayload]:
    name = cmd.name.strip()
    policy = check_policy(cmd.policy)
    if state is not None:
        if (state.node_id, state.name, state.level) == (cmd.node_id, name, cmd.level):
            return []  # the same gate opened again: a retried request
        raise DomainError(
            "checkpoint-exists",
            f"checkpoint {cmd.checkpoint_id} already exists with other values",
            refusal=Refusal.CONFLICT,
            field="id",
        )
    if not CLIENT_ID.match(cmd.checkpoint_id):
        raise DomainError(
            "invalid-id", "id must be 1-100 letters, digits, dashes or underscores", field="id"
        )
    if not name:
        raise DomainError("name-empty", "a checkpoint needs a name", field="name")
    if not cmd.node_known:
        raise DomainError(
            "unknown-node", f"place {cmd.node_id} does not exist or is retired", field="node_id"
        )
    return [
        CheckpointOpened(
            checkpoint_id=cmd.checkpoint_id,
            node_id=cmd.node_id,
            name=name,
            level=cmd.level,
            policy=policy,
        )
    ]


def _open(state: Checkpoint | None) -> Checkpoint:
    if state is None:
        raise DomainError(
            "unknown-checkpoint", "checkpoint does not exist", refusal=Refusal.NOT_FOUND
        )
    if state.closed:
        raise DomainError(
            "checkpoint-closed", f"checkpoint {state.id} is closed", refusal=Refusal.CONFLICT
        )
    return state


def decide_change_policy(
    state: Checkpoint | None,
    policy: CheckpointPolicy,
    effective_from: datetime,
    opened_at: datetime | None,
    latest: PolicyPeriod | None,
) -> list[EventPayload]:
    """`opened_at`: when the gate opened; `latest`: the change with the latest start so far.
    The same policy from the same moment again is a retry and records nothing."""
    checkpoint = _open(state)
    policy = check_policy(policy)
    if opened_at is not None and effective_from < opened_at:
        raise DomainError(
            "before-opening",
            f"the checkpoint opened at {opened_at.isoformat()}; a policy cannot start earlier",
            field="effective_from",
        )
    if latest is not None and (latest.effective_from, latest.policy) == (effective_from, policy):
        return []
    return [
        CheckpointPolicyChanged(
            checkpoint_id=checkpoint.id, policy=policy, effective_from=effective_from
        )
    ]


def decide_close(state: Checkpoint | None, reason: str) -> list[EventPayload]:
    if state is not None and state.closed:
        return []
    checkpoint = _open(state)
    if not reason.strip():
        raise DomainError("reason-empty", "a reason is required", field="reason")
    return [CheckpointClosed(checkpoint_id=checkpoint.id, reason=reason.strip())]


def evolve(state: Checkpoint | None, event: EventPayload, version: int) -> Checkpoint | None:
    if isinstance(event, CheckpointOpened):
        return Checkpoint(
            event.checkpoint_id,
            event.node_id,
            event.name,
            event.level,
            event.policy,
            False,
            version,
        )
    if state is None:
        return None
    if isinstance(event, CheckpointPolicyChanged):
        return replace(state, policy=event.policy, version=version)
    if isinstance(event, CheckpointClosed):
        return replace(state, closed=True, version=version)
    return replace(state, version=version)


# -- the policy in force at a moment ----------------------------------------------------------


@dataclass(frozen=True)
class PolicyPeriod:
    """A policy from `effective_from` on (the opening policy starts when the gate opened);
    `version` orders changes that start at the same moment."""

    effective_from: datetime
    version: int
    policy: CheckpointPolicy


def policy_at(periods: Sequence[PolicyPeriod], moment: datetime) -> CheckpointPolicy | None:
    """The policy in force at `moment`: the latest-starting period that started by then (the
    later change wins a tie); None before the gate opened."""
    started = [p for p in periods if p.effective_from <= moment]
    if not started:
        return None
    return max(started, key=lambda p: (p.effective_from, p.version)).policy


def latest_period(periods: Sequence[PolicyPeriod]) -> PolicyPeriod | None:
    return max(periods, key=lambda p: (p.effective_from, p.version), default=None)
