"""Database outages: telling one from a real error, and waiting one out.

A database restart, a failover or a locked SQLite file must delay runs, never fail them
(docs/semantics.md, "Database outages"). The library's own database work in the worker (loading
a run, recording a transition, writing history) therefore goes through :func:`retrying`: a
connection-level error closes the thread's connections, waits with backoff and tries again, for
up to ``AUTOMATION["DATABASE_OUTAGE_ALLOWANCE"]`` seconds. The activity keeps heartbeating
meanwhile (its heartbeat thread does not touch the database), so Temporal neither times it out
nor counts an attempt. In the web process :func:`unavailable_as_error` turns the same errors into
``DatabaseUnavailableError``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connections

from django_bridge.conf import automation_settings
from facade import DatabaseUnavailableError

__all__ = [
    "check_connection",
    "close_connections",
    "is_outage",
    "retrying",
    "unavailable_as_error",
    "wait_for_database",
]

logger = logging.getLogger("django_temporal_automation")

T = TypeVar("T")

# SQLite raises OperationalError for mistakes too ("no such table", syntax errors); only these
# say the file is busy or out of reach for now.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database", "disk i/o error")

FIRST_DELAY = 0.1
MAX_DELAY = 5.0


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or busy for now (not a bug or bad data).

    ``InterfaceError`` is always a connection problem. ``OperationalError`` is, on Postgres and
    the other servers (refused or dropped connections, a server shutting down, deadlocks and
    serialization failures); on SQLite only when the file is locked or cannot be opened.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):
        message = str(cause).lower()
        return any(fragment in message for fragment in _SQLITE_TRANSIENT)
    return True


def close_connections() -> None:
    """Close this thread's database connections, so the next query opens a fresh one."""
    for conn in connections.all(initialized_only=True):
        with contextlib.suppress(Exception):  # closing a dead connection may raise; it is closed all the same
            conn.close()


def check_connection() -> None:
    """Raise now if the database cannot be reached: a step should not run its code into an outage.

    A connection opened for this activity proves the server is up by connecting; a persistent
    one (``CONN_MAX_AGE``) is checked with Django's ``is_usable()``.
    """
    conn = connections["default"]
    if conn.connection is not None and not conn.is_usable():
        close_connections()
    conn.ensure_connection()


def retrying(what: str, work: Callable[[], T], *, allowance: float | None = None) -> T:
    """Run ``work``, waiting out database outages for up to ``allowance`` seconds.

    ``work`` must be safe to run again after it failed (a transaction that rolled back, an
    idempotent write). Errors that are not outages propagate at once; an outage longer than the
    allowance propagates its last error.
    """
    limit = float(automation_settings.DATABASE_OUTAGE_ALLOWANCE if allowance is None else allowance)
    deadline = time.monotonic() + limit
    delay, failures = FIRST_DELAY, 0
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() + delay > deadline:
                raise
            failures += 1
            if failures == 1 or failures % 10 == 0:
                logger.warning(
                    "%s: the database is unavailable (%s); retrying for up to %.0f s in all", what, exc, limit
                )
            close_connections()
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)


def wait_for_database(what: str, *, allowance: float | None = None) -> None:
    """Return once the default database answers a query, waiting out an outage."""

    def ping() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")

    retrying(what, ping, allowance=allowance)


@contextlib.contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Raise ``DatabaseUnavailableError`` for an outage inside the block (web-process calls)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if not is_outage(exc):
            raise
        close_connections()
        raise DatabaseUnavailableError(
            f"{what}: the database is unavailable ({str(exc).strip()}); nothing was changed. "
            "Try again once the database is back."
        ) from exc
