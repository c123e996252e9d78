"""Read models for the ledgers, daily-report completeness and responsibility chains.

Three projections, each with its own consumer (own offsets, dead letters, rebuild):

* `LEDGERS` keeps what the jurisdiction ledgers list: persons (masked), key persons,
  household visits, checkpoints and crossings.
* `REPORTS` keeps each node's latest daily report per day and whether its first one was late.
* `CHAINS` keeps chain templates, instances, assignments with their periods, the parties
  (public name and role), the persons a person-covering tier may answer for (where they live,
  voided or not) and the key persons among them.

Place rows come from the `places` consumer; queries join them by id, so a moved subtree
takes its rows with it. Every write is idempotent per event (upserts keyed by the record id).
"""

from __future__ import annotations

from typing import Any

from shared.contracts.checkpoint import CheckpointOpened, CrossingRecorded
from shared.contracts.registry import (
    AssignmentEnded,
    ChainInstanceEnded,
    ChainInstanceStarted,
    ChainTemplateDefined,
    PartyAssigned,
    PartyRegistered,
    PersonContactChanged,
    PersonMoved,
    PersonRegistered,
    PersonResidencyChanged,
    PersonVoided,
)
from shared.contracts.screening import (
    DailyReportSubmitted,
    HouseholdVisited,
    KeyPersonCleared,
    KeyPersonFlagged,
    VisitVoided,
)
from shared.envelope import Envelope
from shared.projection import Apply, Projection

# -- ledgers: persons ------------------------------------------------------------------------


async def on_person_registered(conn: Any, env: Envelope, e: PersonRegistered) -> None:
    await conn.execute(
        """
        INSERT INTO ledger_persons (person_id, household_id, name_masked, document_masked,
            phone_masked, residency)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (person_id) DO NOTHING
        """,
        e.person_id, e.household_id, e.name_masked, e.document_masked, e.phone_masked,
        e.residency,
    )  # fmt: skip


async def on_person_moved(conn: Any, env: Envelope, e: PersonMoved) -> None:
    await conn.execute(
        "UPDATE ledger_persons SET household_id = $2 WHERE person_id = $1",
        e.person_id,
        e.to_household_id,
    )


async def on_residency_changed(conn: Any, env: Envelope, e: PersonResidencyChanged) -> None:
    await conn.execute(
        "UPDATE ledger_persons SET residency = $2 WHERE person_id = $1", e.person_id, e.residency
    )


async def on_contact_changed(conn: Any, env: Envelope, e: PersonContactChanged) -> None:
    await conn.execute(
        "UPDATE ledger_persons SET name_masked = $2, phone_masked = $3 WHERE person_id = $1",
        e.person_id,
        e.name_masked,
        e.phone_masked,
    )


async def on_person_voided(conn: Any, env: Envelope, e: PersonVoided) -> None:
    await conn.execute("UPDATE ledger_persons SET voided = true WHERE person_id = $1", e.person_id)


# -- ledgers: key persons --------------------------------------------------------------------


async def on_key_person_flagged(conn: Any, env: Envelope, e: KeyPersonFlagged) -> None:
    """A first flag (or a flag after clearing) opens the dossier; repeated flags add reasons."""
    await conn.execute(
        """
        INSERT INTO ledger_key_persons (subject_id, node_id, reasons, source, name_masked,
            document_masked, flagged_at)
        VALUES ($1, $2, $3::text[], $4, $5, $6, $7)
        ON CONFLICT (subject_id) DO UPDATE SET
            node_id = COALESCE(EXCLUDED.node_id, ledger_key_persons.node_id),
            reasons = CASE WHEN ledger_key_persons.cleared_at IS NOT NULL THEN EXCLUDED.reasons
                ELSE ARRAY(SELECT DISTINCT r FROM unnest(ledger_key_persons.reasons
                    || EXCLUDED.reasons) AS r ORDER BY r) END,
            source = CASE WHEN ledger_key_persons.cleared_at IS NOT NULL THEN EXCLUDED.source
                ELSE ledger_key_persons.source END,
            name_masked = COALESCE(EXCLUDED.name_masked, ledger_key_persons.name_masked),
            document_masked = COALESCE(EXCLUDED.document_masked,
                ledger_key_persons.document_masked),
            flagged_at = CASE WHEN ledger_key_persons.cleared_at IS NOT NULL
                THEN EXCLUDED.flagged_at ELSE ledger_key_persons.flagged_at END,
            cleared_at = NULL,
            cleared_reason = NULL
        """,
        e.subject_id, e.node_id, sorted(set(e.reasons)), e.source, e.name_masked,
        e.document_masked, env.occurred_at,
    )  # fmt: skip


async def on_key_person_cleared(conn: Any, env: Envelope, e: KeyPersonCleared) -> None:
    await conn.execute(
        "UPDATE ledger_key_persons SET cleared_at = $2, cleared_reason = $3 WHERE subject_id = $1",
        e.subject_id,
        env.occurred_at,
        e.reason,
    )


# -- ledgers: visits -------------------------------------------------------------------------


async def on_household_visited(conn: Any, env: Envelope, e: HouseholdVisited) -> None:
    await conn.execute(
        """
        INSERT INTO ledger_visits (visit_id, household_id, method, outcome, screened, occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (visit_id) DO NOTHING
        """,
        e.visit_id, e.household_id, e.method, e.outcome, e.screens_household, env.occurred_at,
    )  # fmt: skip


async def on_visit_voided(conn: Any, env: Envelope, e: VisitVoided) -> None:
    await conn.execute("UPDATE ledger_visits SET voided = true WHERE visit_id = $1", e.visit_id)


# -- ledgers: checkpoints and crossings ------------------------------------------------------


async def on_checkpoint_opened(conn: Any, env: Envelope, e: CheckpointOpened) -> None:
    await conn.execute(
        """
        INSERT INTO ledger_checkpoints (checkpoint_id, node_id, name, level)
        VALUES ($1, $2, $3, $4) ON CONFLICT (checkpoint_id) DO NOTHING
        """,
        e.checkpoint_id,
        e.node_id,
        e.name,
        e.level,
    )


async def on_crossing_recorded(conn: Any, env: Envelope, e: CrossingRecorded) -> None:
    await conn.execute(
        """
        INSERT INTO ledger_crossings (crossing_id, checkpoint_id, node_id, kind, direction,
            document_masked, plate, passengers, temperature, health_code, origin, decision,
            reasons, occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text[], $14)
        ON CONFLICT (crossing_id) DO NOTHING
        """,
        e.crossing_id, e.checkpoint_id, e.node_id, e.kind, e.direction, e.document_masked,
        e.plate, len(e.passengers), e.temperature, e.health_code, e.origin, e.decision,
        list(e.reasons), env.occurred_at,
    )  # fmt: skip


# -- daily reports ---------------------------------------------------------------------------


async def on_daily_report(conn: Any, env: Envelope, e: DailyReportSubmitted) -> None:
    """The latest revision's figures win; lateness is the first revision's (a report's
    revisions travel in one stream, so the first one seen is revision 1)."""
    await conn.execute(
        """
        INSERT INTO report_days (node_id, day, revision, zero, figures, first_late,
            first_revision, submitted_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $3, $7)
        ON CONFLICT (node_id, day) DO UPDATE SET
            revision = EXCLUDED.revision,
            zero = EXCLUDED.zero,
            figures = EXCLUDED.figures,
            submitted_at = EXCLUDED.submitted_at
        WHERE EXCLUDED.revision > report_days.revision
        """,
        e.node_id, e.day, e.revision, e.zero, dict(e.figures), e.late,
        env.occurred_at,
    )  # fmt: skip


# -- chains ----------------------------------------------------------------------------------


async def on_template_defined(conn: Any, env: Envelope, e: ChainTemplateDefined) -> None:
    tiers = [t.model_dump(mode="json") for t in e.tiers]
    await conn.execute(
        """
        INSERT INTO chain_templates (template_id, name, tiers) VALUES ($1, $2, $3::jsonb)
        ON CONFLICT (template_id) DO UPDATE SET name = EXCLUDED.name, tiers = EXCLUDED.tiers
        """,
        e.template_id,
        e.name,
        tiers,
    )


async def on_instance_started(conn: Any, env: Envelope, e: ChainInstanceStarted) -> None:
    await conn.execute(
        """
        INSERT INTO chain_instances (instance_id, template_id, root_node_id, valid_from, valid_to)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (instance_id) DO NOTHING
        """,
        e.instance_id, e.template_id, e.root_node_id, e.valid_from, e.valid_to,
    )  # fmt: skip


async def on_instance_ended(conn: Any, env: Envelope, e: ChainInstanceEnded) -> None:
    await conn.execute(
        "UPDATE chain_instances SET valid_to = $2 WHERE instance_id = $1",
        e.instance_id,
        e.valid_to,
    )


async def on_party_assigned(conn: Any, env: Envelope, e: PartyAssigned) -> None:
    await conn.execute(
        """
        INSERT INTO chain_assignments (assignment_id, instance_id, level, party_id, target_type,
            target_id, valid_from, valid_to)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (assignment_id) DO NOTHING
        """,
        e.assignment_id, e.instance_id, e.level, e.party_id, e.target_type, e.target_id,
        e.valid_from, e.valid_to,
    )  # fmt: skip


async def on_assignment_ended(conn: Any, env: Envelope, e: AssignmentEnded) -> None:
    await conn.execute(
        "UPDATE chain_assignments SET valid_to = $2 WHERE assignment_id = $1",
        e.assignment_id,
        e.valid_to,
    )


async def on_chain_key_person_flagged(conn: Any, env: Envelope, e: KeyPersonFlagged) -> None:
    await conn.execute(
        """
        INSERT INTO chain_key_persons (subject_id, node_id, name_masked, flagged_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (subject_id) DO UPDATE SET
            node_id = COALESCE(EXCLUDED.node_id, chain_key_persons.node_id),
            name_masked = COALESCE(EXCLUDED.name_masked, chain_key_persons.name_masked),
            flagged_at = CASE WHEN chain_key_persons.cleared_at IS NOT NULL
                THEN EXCLUDED.flagged_at ELSE chain_key_persons.flagged_at END,
            cleared_at = NULL
        """,
        e.subject_id,
        e.node_id,
        e.name_masked,
        env.occurred_at,
    )


async def on_chain_party_registered(conn: Any, env: Envelope, e: PartyRegistered) -> None:
    await conn.execute(
        """
        INSERT INTO chain_parties (party_id, kind, name, role, node_id)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (party_id) DO NOTHING
        """,
        e.party_id, e.kind, e.name, e.role, e.node_id,
    )  # fmt: skip


async def on_chain_person_registered(conn: Any, env: Envelope, e: PersonRegistered) -> None:
    await conn.execute(
        """
        INSERT INTO chain_persons (person_id, household_id, name_masked) VALUES ($1, $2, $3)
        ON CONFLICT (person_id) DO NOTHING
        """,
        e.person_id,
        e.household_id,
        e.name_masked,
    )


async def on_chain_person_moved(conn: Any, env: Envelope, e: PersonMoved) -> None:
    """A person (key or not) who moves is answered for where they live now."""
    await conn.execute(
        "UPDATE chain_key_persons SET node_id = $2 WHERE subject_id = $1",
        e.person_id,
        e.to_household_id,
    )
    await conn.execute(
        "UPDATE chain_persons SET household_id = $2 WHERE person_id = $1",
        e.person_id,
        e.to_household_id,
    )


async def on_chain_person_contact(conn: Any, env: Envelope, e: PersonContactChanged) -> None:
    await conn.execute(
        "UPDATE chain_persons SET name_masked = $2 WHERE person_id = $1",
        e.person_id,
        e.name_masked,
    )


async def on_chain_person_voided(conn: Any, env: Envelope, e: PersonVoided) -> None:
    await conn.execute("UPDATE chain_persons SET voided = true WHERE person_id = $1", e.person_id)


async def on_chain_key_person_cleared(conn: Any, env: Envelope, e: KeyPersonCleared) -> None:
    await conn.execute(
        "UPDATE chain_key_persons SET cleared_at = $2 WHERE subject_id = $1",
        e.subject_id,
        env.occurred_at,
    )


LEDGER_HANDLERS: dict[type[Any], Apply] = {
    PersonRegistered: on_person_registered,
    PersonMoved: on_person_moved,
    PersonResidencyChanged: on_residency_changed,
    PersonContactChanged: on_contact_changed,
    PersonVoided: on_person_voided,
    KeyPersonFlagged: on_key_person_flagged,
    KeyPersonCleared: on_key_person_cleared,
    HouseholdVisited: on_household_visited,
    VisitVoided: on_visit_voided,
    CheckpointOpened: on_checkpoint_opened,
    CrossingRecorded: on_crossing_recorded,
}
REPORT_HANDLERS: dict[type[Any], Apply] = {DailyReportSubmitted: on_daily_report}
CHAIN_HANDLERS: dict[type[Any], Apply] = {
    ChainTemplateDefined: on_template_defined,
    ChainInstanceStarted: on_instance_started,
    ChainInstanceEnded: on_instance_ended,
    PartyAssigned: on_party_assigned,
    AssignmentEnded: on_assignment_ended,
    KeyPersonFlagged: on_chain_key_person_flagged,
    KeyPersonCleared: on_chain_key_person_cleared,
    PartyRegistered: on_chain_party_registered,
    PersonRegistered: on_chain_person_registered,
    PersonMoved: on_chain_person_moved,
    PersonContactChanged: on_chain_person_contact,
    PersonVoided: on_chain_person_voided,
}

LEDGERS = Projection(LEDGER_HANDLERS)
REPORTS = Projection(REPORT_HANDLERS)
CHAINS = Projection(CHAIN_HANDLERS)
