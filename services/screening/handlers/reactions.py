"""Screening reacting to its own facts: a fever reading or a positive test flags a key person.

The `reactions` consumer reads `screening.events` (the service's own topic, so it sees a fact
only once it was committed and relayed) and runs the flag command for each fact that calls
for one (`domain.key_persons.reaction_to`, with the rules in force when it is read).

Exactly once: the flag command runs with the command id `reaction:<event_id>`. The consumer
base's transaction (offsets, per-stream versions) and the command's transaction are separate:
the command must be the first write of its own transaction, and the consumer's transaction has
already written its offset row. If the process dies between the two commits, the event is
delivered again and the command runs again under the same command id; `execute` finds the
events stored under that id and answers with them, writing nothing. That is enough because the
command id is stored *on the event rows* of the command's own transaction: either the flag and
its id were committed together, or neither was. (A first run that flagged nothing — the person
already held the reason — stores no id; running it again decides again and still finds nothing
new, unless the person was cleared in between, in which case the fact is a new reason anyway.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from services.screening.domain.key_persons import reaction_to
from services.screening.handlers.key_persons import current_rules, flag_key_person
from shared.contracts.published import decode
from shared.contracts.screening import TemperatureRecorded, TestResulted
from shared.envelope import Envelope
from shared.errors import DomainError
from shared.eventstore import CommandContext, ConcurrencyError
from shared.runtime import WithPool

log = logging.getLogger(__name__)

ACTOR = "screening.reactions"
ATTEMPTS = 5
SOURCES = frozenset({TemperatureRecorded.event_type, TestResulted.event_type})


class Reactions:
    """A consumer handler that flags key persons with commands of their own (on `pool`):
    the consumer's transaction has written its offsets already, and an append must be its
    transaction's first write."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def __call__(self, conn: Any, events: Sequence[Envelope]) -> None:
        wanted = [env for env in events if env.type in SOURCES]
        if not wanted:
            return
        rules = await current_rules(conn)
        pool = self.pool
        for env in wanted:
            reaction = reaction_to(decode(env), rules)
            if reaction is None:
                continue
            ctx = CommandContext(
                actor=ACTOR,
                command_id=f"reaction:{env.event_id}",
                correlation_id=env.correlation_id,
                causation_id=env.event_id,
            )
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    await flag_key_person(
                        pool,
                        reaction.subject_id,
                        reaction.reasons,
                        reaction.source,
                        reaction.source_id,
                        env.node_id,
                        ctx=ctx,
                        occurred_at=env.occurred_at,
                    )
                    break
                except ConcurrencyError:
                    # an inquiry flagged the same person meanwhile: decide again on its result
                    if attempt == ATTEMPTS:
                        raise
                except DomainError as exc:
                    # a person voided since the reading was taken: nobody left to flag
                    log.warning("reaction to %s %s skipped: %s", env.type, env.event_id, exc)
                    break


REACTIONS = WithPool(Reactions)
