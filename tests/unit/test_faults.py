"""Transient errors are retried, the event's own failures are parked (shared/faults.py)."""

from __future__ import annotations

import asyncio
import errno

import asyncpg
import pytest
from aiokafka import errors as kafka_errors
from asyncpg.exceptions import _base as asyncpg_base
from pydantic import BaseModel, ValidationError

from shared.faults import describe, is_transient


def pg(sqlstate: str, message: str = "from the server") -> asyncpg.PostgresError:
    """The error asyncpg raises for a server error with this SQLSTATE."""
    error: asyncpg.PostgresError = asyncpg.PostgresError.new({"C": sqlstate, "M": message})
    return error


class Strict(BaseModel):
    n: int


def validation_error() -> ValidationError:
    try:
        Strict.model_validate({"n": "not a number"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


TRANSIENT = [
    pytest.param(asyncpg.ConnectionDoesNotExistError("connection was closed"), id="08003"),
    pytest.param(asyncpg.ConnectionFailureError("connection failure"), id="08006"),
    pytest.param(asyncpg.PostgresConnectionError("connection"), id="08000"),
    pytest.param(pg("08001"), id="08001-cannot-connect"),
    pytest.param(asyncpg.CannotConnectNowError("the database system is starting up"), id="57P03"),
    pytest.param(pg("57P01", "terminating connection due to administrator command"), id="57P01"),
    pytest.param(pg("57P02"), id="57P02-crash-shutdown"),
    pytest.param(pg("57014", "canceling statement due to statement timeout"), id="57014"),
    pytest.param(asyncpg.DeadlockDetectedError("deadlock detected"), id="40P01"),
    pytest.param(asyncpg.SerializationError("could not serialize access"), id="40001"),
    pytest.param(
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"), id="55P03"
    ),
    pytest.param(asyncpg.TooManyConnectionsError("too many clients already"), id="53300"),
    pytest.param(pg("53100", "could not extend file: No space left on device"), id="53100"),
    pytest.param(pg("58030"), id="58030-io-error"),
    pytest.param(pg("25006"), id="25006-read-only-standby"),
    pytest.param(asyncpg.InterfaceError("connection is closed"), id="interface-closed"),
    pytest.param(
        asyncpg.InvalidCachedStatementError("cached statement plan is invalid"), id="stale-plan"
    ),
    pytest.param(asyncpg_base.OutdatedSchemaCacheError("type changed"), id="stale-types"),
    pytest.param(
        asyncpg_base.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        id="connection-left-mid-operation",
    ),
    pytest.param(ConnectionResetError(errno.ECONNRESET, "reset by peer"), id="conn-reset"),
    pytest.param(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), id="conn-refused"),
    pytest.param(OSError(errno.EHOSTUNREACH, "no route to host"), id="oserror"),
    pytest.param(TimeoutError(), id="timeout"),
    pytest.param(asyncio.TimeoutError(), id="asyncio-timeout"),  # noqa: UP041 - the alias
    pytest.param(kafka_errors.KafkaConnectionError("broker gone"), id="kafka-connection"),
    pytest.param(kafka_errors.NotLeaderForPartitionError(), id="kafka-not-leader"),
    pytest.param(kafka_errors.RequestTimedOutError(), id="kafka-request-timeout"),
    pytest.param(kafka_errors.KafkaTimeoutError(), id="kafka-timeout"),
    pytest.param(kafka_errors.NoBrokersAvailable(), id="kafka-no-brokers"),
]

DETERMINISTIC = [
    pytest.param(ValueError("bad payload"), id="value-error"),
    pytest.param(KeyError("path"), id="key-error"),
    pytest.param(validation_error(), id="pydantic"),
    pytest.param(asyncpg.UniqueViolationError("duplicate key"), id="23505"),
    pytest.param(asyncpg.ForeignKeyViolationError("no parent"), id="23503"),
    pytest.param(asyncpg.NotNullViolationError("null"), id="23502"),
    pytest.param(asyncpg.CheckViolationError("check"), id="23514"),
    pytest.param(pg("22P02", "invalid input syntax for type integer"), id="22P02"),
    pytest.param(asyncpg.UndefinedColumnError("column does not exist"), id="42703"),
    pytest.param(asyncpg.InFailedSQLTransactionError("current transaction is aborted"), id="25P02"),
    pytest.param(asyncpg.FeatureNotSupportedError("not supported"), id="0A000-other"),
    pytest.param(
        asyncpg_base.DataError("invalid input for query argument $1"), id="client-data-error"
    ),
    pytest.param(kafka_errors.CorruptRecordException(), id="kafka-not-retriable"),
    pytest.param(RuntimeError("handler bug"), id="runtime-error"),
]


@pytest.mark.parametrize("exc", TRANSIENT)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", DETERMINISTIC)
def test_deterministic(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_wrapped_transient_error_is_transient() -> None:
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        except asyncpg.PostgresError as inner:
            raise RuntimeError("could not write the figures") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_an_error_raised_while_handling_a_transient_one_is_transient() -> None:
    try:
        try:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        except asyncpg.PostgresError:
            raise ValueError("while rolling back")  # noqa: B904 - the implicit context on purpose
    except ValueError as outer:
        assert is_transient(outer)  # implicit context


def test_an_explicitly_suppressed_context_is_not_followed() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise ValueError("the payload is wrong") from None
    except ValueError as outer:
        assert not is_transient(outer)


def test_a_chain_of_deterministic_errors_is_deterministic() -> None:
    try:
        try:
            raise KeyError("node_id")
        except KeyError as inner:
            raise ValueError("unknown node") from inner
    except ValueError as outer:
        assert not is_transient(outer)


def test_a_cycle_in_the_chain_ends() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not is_transient(a)


def test_a_group_with_a_transient_member_is_transient() -> None:
    group = ExceptionGroup("handlers", [ValueError("x"), asyncpg.SerializationError("y")])
    assert is_transient(group)
    assert not is_transient(ExceptionGroup("handlers", [ValueError("x"), KeyError("y")]))


def test_describe() -> None:
    assert describe(ValueError("bad payload")) == "ValueError: bad payload"
