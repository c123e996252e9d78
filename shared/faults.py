"""Which errors are the world's fault and which are the event's.

A consumer parks an event only when applying *its data* failed: the same event would fail the
same way on every attempt. Everything that may pass by itself — the database went away or is
restarting, a lock or statement timed out, a deadlock or serialization failure chose this
transaction as the victim, the server ran out of connections, Kafka lost a broker — is
*transient*: the transaction is rolled back, nothing is parked, and the batch is tried again
(shared/consumer.py lets the error end `run()`; the supervisor restarts it).

`is_transient` looks at the error and at what it was raised from or while handling
(`__cause__`, `__context__` unless suppressed with `raise ... from None`), so a handler that
wraps a lost connection in an error of its own is still retried.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaError, KafkaTimeoutError
from asyncpg.exceptions import _base as asyncpg_base

# SQLSTATE classes and codes that say nothing about the event being applied
TRANSIENT_SQLSTATE_CLASSES = (
    "08",  # connection exception
    "53",  # insufficient resources: too many connections, out of memory, disk full
    "58",  # system error: I/O error outside PostgreSQL
)
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout, NOWAIT)
        "57014",  # query_canceled (statement_timeout, pg_cancel_backend)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "57P05",  # idle_session_timeout
        "25006",  # read_only_sql_transaction: connected to a standby during a failover
    }
)

# client-side asyncpg errors that are about the arguments or the setup, not the connection
_DETERMINISTIC_INTERFACE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg_base.DataError,
    asyncpg_base.ClientConfigurationError,
    asyncpg_base.UnsupportedClientFeatureError,
    asyncpg_base.UnsupportedServerFeatureError,
)


def _transient_here(exc: BaseException) -> bool:
    """`exc` itself, without looking at what it came from."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state == "0A000":  # feature_not_supported: only a stale cached plan passes
            return isinstance(exc, asyncpg.InvalidCachedStatementError)
        return state in TRANSIENT_SQLSTATES or state.startswith(TRANSIENT_SQLSTATE_CLASSES)
    if isinstance(exc, asyncpg.InterfaceError):  # "connection is closed", pool released, ...
        return not isinstance(exc, _DETERMINISTIC_INTERFACE_ERRORS)
    if isinstance(exc, asyncpg_base.InternalClientError):
        # the driver's own state, not the event's data: a type changed under a cached
        # statement (OutdatedSchemaCacheError), or a connection left mid-operation when its
        # server went away ("cannot switch to state 12; another operation is in progress",
        # seen during PostgreSQL restarts); a retry runs on a fresh connection
        return True
    if isinstance(exc, KafkaError):  # aiokafka marks its timeouts as not retriable
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)
    # ConnectionError, TimeoutError (asyncio.TimeoutError is the same class) and every
    # other OSError: the network, the file system, the process's limits
    return isinstance(exc, OSError | asyncio.TimeoutError)


# The classes whose instances may be transient (is_transient decides for each instance).
TRANSIENT_KINDS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg_base.InternalClientError,
    KafkaError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    """True if `exc`, or an error it was raised from or while handling, may pass by itself."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _transient_here(current):
            return True
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        if current.__context__ is not None and not current.__suppress_context__:
            todo.append(current.__context__)
    return False


def describe(exc: BaseException) -> str:
    """The error as stored in dead letters: its class and message."""
    return f"{type(exc).__name__}: {exc}"
