"""Households, persons, vehicles, encrypted PII and the PII access log.

Revision ID: 0003
"""

from alembic import op

from shared.kernel_schema import statements

revision = "0003"
down_revision = "0002"

DDL = """
CREATE TABLE households (
    id           text PRIMARY KEY REFERENCES nodes (id),
    door_number  text NOT NULL,
    address      text,
    version      integer NOT NULL
);
CREATE TABLE persons (
    id               text PRIMARY KEY,
    household_id     text NOT NULL REFERENCES households (id),
    residency        text NOT NULL,
    tags             text[] NOT NULL DEFAULT '{}',
    document_type    text NOT NULL,
    document_masked  text NOT NULL,
    name_masked      text NOT NULL,
    phone_masked     text,
    id_hmac          text NOT NULL,
    birth_year       integer,
    sex              text,
    voided           boolean NOT NULL DEFAULT false,
    version          integer NOT NULL
);
CREATE UNIQUE INDEX persons_id_hmac_key ON persons (id_hmac) WHERE NOT voided;
CREATE INDEX persons_household_idx ON persons (household_id);
CREATE TABLE vehicles (
    id            text PRIMARY KEY,
    household_id  text NOT NULL REFERENCES households (id),
    plate         text NOT NULL,
    version       integer NOT NULL
);
CREATE UNIQUE INDEX vehicles_plate_key ON vehicles (plate);
CREATE TABLE pii (
    owner_id    text NOT NULL,
    field       text NOT NULL,
    key_id      text NOT NULL,
    ciphertext  bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, field)
);
CREATE INDEX pii_key_idx ON pii (key_id);
CREATE TABLE pii_access_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    roles           text[] NOT NULL,
    person_id       text NOT NULL,
    fields          text[] NOT NULL,
    reason          text NOT NULL,
    correlation_id  uuid
);
CREATE INDEX pii_access_log_person_idx ON pii_access_log (person_id, at);
CREATE INDEX pii_access_log_actor_idx ON pii_access_log (actor, at)
"""


def upgrade() -> None:
    for sql in statements(DDL):
        op.execute(sql)


def downgrade() -> None:
    for table in ("pii_access_log", "pii", "vehicles", "persons", "households"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
