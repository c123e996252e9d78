"""Watch and quarantine, follow-up slots and care tasks.

* `watch_subjects`: the watch state of each subject (who is under observation or in which
  quarantine, since when, at which node); `quarantines`: each quarantine order.
* `temperature_readings` (one row per reading, with the slot it counts for) and
  `follow_up_misses` (one row per missed slot).
* `care_tasks` (done), `care_misses`, and `place_care_plans` of public places.
* `scheduler_marks`: the scheduler's low-water mark per stream (`watch:<subject>`,
  `placecare:<node>`): every slot that closed at or before `scanned_to` is settled; the
  stream needs looking at again at `next_check` (NULL: nothing can fall due any more).
  `epoch` changes whenever a command moves the mark back (a back-dated start), so a scan
  that read the row before never overwrites it.

Revision ID: 0005
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0005"
down_revision = "0004"

WATCH_DDL = """
CREATE TABLE IF NOT EXISTS watch_subjects (
    subject_id      text PRIMARY KEY,
    status          text NOT NULL,
    kind            text,
    node_id         text,
    quarantine_id   text,
    place           text,
    planned_end     date,
    carer_party_id  text,
    since           timestamptz,
    ended_at        timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS watch_subjects_node_idx ON watch_subjects (node_id);
CREATE INDEX IF NOT EXISTS watch_subjects_status_idx ON watch_subjects (status);

CREATE TABLE IF NOT EXISTS quarantines (
    id              text PRIMARY KEY,
    subject_id      text NOT NULL,
    node_id         text,
    type            text NOT NULL,
    place           text,
    starts_at       timestamptz NOT NULL,
    planned_end     date NOT NULL,
    carer_party_id  text,
    status          text NOT NULL,
    extensions      integer NOT NULL DEFAULT 0,
    ended_at        timestamptz,
    end_reason      text,
    transferred_to  text,
    destination     text,
    ordered_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantines_subject_idx ON quarantines (subject_id);

CREATE TABLE IF NOT EXISTS temperature_readings (
    reading_id   text PRIMARY KEY,
    subject_id   text NOT NULL,
    celsius      double precision NOT NULL,
    occurred_at  timestamptz NOT NULL,
    slot_day     date NOT NULL,
    slot         text NOT NULL,
    late         boolean NOT NULL,
    recorded_by  text NOT NULL,
    node_id      text
);
CREATE INDEX IF NOT EXISTS temperature_readings_slot_idx
    ON temperature_readings (subject_id, slot_day, slot);

CREATE TABLE IF NOT EXISTS follow_up_misses (
    subject_id      text NOT NULL,
    slot_day        date NOT NULL,
    slot            text NOT NULL,
    node_id         text,
    carer_party_id  text,
    closed_at       timestamptz NOT NULL,
    PRIMARY KEY (subject_id, slot_day, slot)
);

CREATE TABLE IF NOT EXISTS care_tasks (
    task_id      text PRIMARY KEY,
    target_id    text NOT NULL,
    target_kind  text NOT NULL,
    task         text NOT NULL,
    slot_day     date NOT NULL,
    slot         text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    done_by      text NOT NULL,
    notes        text,
    late         boolean NOT NULL,
    node_id      text
);
CREATE INDEX IF NOT EXISTS care_tasks_target_idx ON care_tasks (target_id, slot_day);

CREATE TABLE IF NOT EXISTS care_misses (
    target_id    text NOT NULL,
    target_kind  text NOT NULL,
    task         text NOT NULL,
    slot_day     date NOT NULL,
    slot         text NOT NULL,
    party_id     text,
    node_id      text,
    closed_at    timestamptz NOT NULL,
    PRIMARY KEY (target_id, task, slot_day, slot)
);

CREATE TABLE IF NOT EXISTS place_care_plans (
    node_id         text NOT NULL,
    task            text NOT NULL,
    times_per_day   integer NOT NULL,
    slots           text[] NOT NULL,
    party_id        text,
    effective_from  timestamptz NOT NULL,
    version         integer NOT NULL,
    PRIMARY KEY (node_id, task)
);

CREATE TABLE IF NOT EXISTS scheduler_marks (
    stream_id   text PRIMARY KEY,
    scanned_to  timestamptz NOT NULL,
    next_check  timestamptz,
    epoch       integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS scheduler_marks_due_idx ON scheduler_marks (next_check)
    WHERE next_check IS NOT NULL;
"""

TABLES = (
    "scheduler_marks",
    "place_care_plans",
    "care_misses",
    "care_tasks",
    "follow_up_misses",
    "temperature_readings",
    "quarantines",
    "watch_subjects",
)


def upgrade() -> None:
    for sql in statements(WATCH_DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
