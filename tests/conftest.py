"""Fixtures: one real Temporal dev server and one time-skipping server per session.

Each test gets its own task queue and worker-visible database rows (transactional tests).
"""

from __future__ import annotations

import time

import pytest

from facade.testing import TemporalTestEnvironment


@pytest.fixture(scope="session")
def temporal_dev(django_db_setup, django_db_blocker):
    with TemporalTestEnvironment() as env:
        yield env


@pytest.fixture(scope="session")
def temporal_ts(django_db_setup, django_db_blocker):
    with TemporalTestEnvironment(time_skipping=True) as env:
        yield env


def _settle(env: TemporalTestEnvironment, quiet: float = 0.3, timeout: float = 30.0) -> None:
    """Before the test's rows are emptied: the dispatch has sent what the test committed and the
    shared worker has run no activity for ``quiet`` seconds. Workflows a test left going (an
    event's other subscribers, runs due now) would otherwise write while the tables are
    truncated, which on Postgres is a deadlock on their row locks."""
    from temporal_worker.activities import in_flight
    from temporal_worker.dispatch import wait_dispatched

    wait_dispatched(timeout)
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        if in_flight.count:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= quiet:
            return
        time.sleep(0.02)


@pytest.fixture
def dev(temporal_dev, transactional_db):
    """The dev server with a worker, for a test whose rows the worker can see."""
    temporal_dev.activate()  # both session servers may be up: point engine at this one
    yield temporal_dev
    _settle(temporal_dev)


@pytest.fixture
def ts(temporal_ts, transactional_db):
    """The time-skipping server with a worker."""
    temporal_ts.activate()
    yield temporal_ts
    _settle(temporal_ts)
