"""Referrals from the gates: a crossing checkpoint decided to `refer` makes each person in it a
key person here (a person for a person crossing; every passenger for a vehicle).

The `checkpoint-referrals` consumer reads `checkpoint.events` and runs the flag command
(`handlers.key_persons.flag_key_person`, source `checkpoint`, source id = the crossing id)
with the reasons `checkpoint_referral` plus what the gate found: `fever`,
`returnee_risk_area` for an arrival from a risk area, and `unresolved_travel` for one from
an origin the gate could not place.

Who is flagged: the registry person the gate recognised, when screening's own view of the
registry knows them (by person id, else by `id_hmac`) and they are not voided; anyone else
as `h:<id_hmac>` with the masked document and the gate's place as node, until registered.

Exactly once: each flag runs under the command id `referral:<event_id>` (passengers after
the first: `referral:<event_id>:<n>`, since one command id stands for one command). The
command's own transaction stores that id on its event rows, so a crossing delivered again
after a crash finds its flag stored and writes nothing (the same argument as in
`handlers.reactions`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from services.screening.handlers.key_persons import flag_key_person
from shared.contracts.checkpoint import CrossingRecorded
from shared.contracts.published import decode
from shared.envelope import Envelope
from shared.errors import DomainError
from shared.eventstore import CommandContext
from shared.runtime import WithPool

log = logging.getLogger(__name__)

ACTOR = "screening.referrals"
HMAC_PREFIX = "h:"
# what a gate's reasons say about the person, in screening's words
GATE_REASONS = {
    "fever": "fever",
    "risk_area_origin": "returnee_risk_area",
    "unresolved_origin": "unresolved_travel",
}


def referral_reasons(gate_reasons: Sequence[str]) -> list[str]:
    found = {GATE_REASONS[r] for r in gate_reasons if r in GATE_REASONS}
    return ["checkpoint_referral", *sorted(found)]


def referred(crossing: CrossingRecorded) -> list[tuple[str, str, str | None, str | None]]:
    """(id_hmac, masked document, document type, registry person id) of each person."""
    if crossing.kind == "person":
        if crossing.id_hmac is None:
            return []
        return [
            (
                crossing.id_hmac,
                crossing.document_masked or "",
                crossing.document_type,
                crossing.subject_id,
            )
        ]
    return [
        (p.id_hmac, p.document_masked, p.document_type, p.subject_id) for p in crossing.passengers
    ]


async def _registered(conn: Any, person_id: str | None, id_hmac: str) -> str | None:
    """The person as screening knows them: by id, else by document HMAC; never voided."""
    value = await conn.fetchval(
        "SELECT id FROM persons WHERE NOT voided AND (id = $1 OR id_hmac = $2)"
        " ORDER BY (id = $1) DESC LIMIT 1",
        person_id or "",
        id_hmac,
    )
    return str(value) if value is not None else None


class Referrals:
    """A consumer handler that flags referred arrivals with commands of their own (on
    `pool`), exactly once per crossing by command id."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        for env in events:
            if env.type != CrossingRecorded.event_type:
                continue
            crossing = decode(env)
            assert isinstance(crossing, CrossingRecorded)
            if crossing.decision != "refer":
                continue
            pool = self.pool
            reasons = referral_reasons(crossing.reasons)
            for n, (id_hmac, masked, _type, person_id) in enumerate(referred(crossing)):
                subject = await _registered(conn, person_id, id_hmac)
                if person_id and subject is None:
                    log.warning(
                        "referral %s: person %s unknown to screening, flagged by id_hmac",
                        crossing.crossing_id,
                        person_id,
                    )
                ctx = CommandContext(
                    actor=ACTOR,
                    command_id=f"referral:{env.event_id}" + (f":{n}" if n else ""),
                    correlation_id=env.correlation_id,
                    causation_id=env.event_id,
                )
                try:
                    await flag_key_person(
                        pool,
                        subject or f"{HMAC_PREFIX}{id_hmac}",
                        reasons,
                        "checkpoint",
                        crossing.crossing_id,
                        None if subject else crossing.node_id,
                        id_hmac=id_hmac,
                        document_masked=masked or None,
                        ctx=ctx,
                        occurred_at=env.occurred_at,
                    )
                except DomainError as exc:
                    log.warning("referral %s skipped: %s", crossing.crossing_id, exc)


REFERRALS = WithPool(Referrals)
