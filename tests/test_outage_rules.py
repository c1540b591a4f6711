"""What counts as a database outage, and how long the worker waits one out (no server needed)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError

from facade import DatabaseUnavailableError
from temporal_worker import outages


def wrapped(django_error: type[DatabaseError], driver_error: Exception) -> DatabaseError:
    """A Django error as its database wrapper raises it: the driver's error as its cause."""
    try:
        try:
            raise driver_error
        except Exception as exc:
            raise django_error(*exc.args) from exc
    except DatabaseError as err:
        return err


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (wrapped(OperationalError, sqlite3.OperationalError("database is locked")), True),
        (wrapped(OperationalError, sqlite3.OperationalError("unable to open database file")), True),
        (wrapped(OperationalError, sqlite3.OperationalError("no such table: django_bridge_workflowrun")), False),
        (wrapped(OperationalError, sqlite3.OperationalError('near "SELEC": syntax error')), False),
        (wrapped(OperationalError, ConnectionRefusedError("connection to server failed: Connection refused")), True),
        (OperationalError("terminating connection due to administrator command"), True),
        (InterfaceError("connection already closed"), True),
        (wrapped(IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_what_counts_as_an_outage(error, outage):
    assert outages.is_outage(error) is outage


def test_retrying_waits_out_an_outage_then_succeeds():
    calls = []

    def work() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise OperationalError("server closed the connection unexpectedly")
        return "written"

    assert outages.retrying("a write", work, allowance=10) == "written"
    assert len(calls) == 4
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[0] >= outages.FIRST_DELAY and gaps[2] > gaps[0]  # backing off


def test_retrying_gives_up_after_the_allowance_with_the_last_error():
    started = time.monotonic()
    with pytest.raises(OperationalError, match="refused"):
        outages.retrying("a write", lambda: (_ for _ in ()).throw(OperationalError("Connection refused")), allowance=1)
    assert 0.5 < time.monotonic() - started < 3


def test_retrying_lets_other_errors_through_at_once():
    calls = []

    def work() -> None:
        calls.append(1)
        raise wrapped(OperationalError, sqlite3.OperationalError("no such table: x"))

    with pytest.raises(OperationalError, match="no such table"):
        outages.retrying("a write", work, allowance=10)
    assert calls == [1]


def test_the_web_process_gets_one_clear_error():
    with pytest.raises(
        DatabaseUnavailableError, match=r"engine.start\('x'\): the database is unavailable .* nothing was changed"
    ):
        with outages.unavailable_as_error("engine.start('x')"):
            raise OperationalError("connection refused")
    with pytest.raises(IntegrityError):  # not an outage: the caller sees the real error
        with outages.unavailable_as_error("engine.start('x')"):
            raise IntegrityError("duplicate key")
