"""Fixtures: one real Temporal dev server and one time-skipping server per session.

Each test gets its own task queue and worker-visible database rows (transactional tests).
"""

from __future__ import annotations

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


@pytest.fixture
def dev(temporal_dev, transactional_db):
    """The dev server with a worker, for a test whose rows the worker can see."""
    temporal_dev.activate()  # both session servers may be up: point engine at this one
    return temporal_dev


@pytest.fixture
def ts(temporal_ts, transactional_db):
    """The time-skipping server with a worker."""
    temporal_ts.activate()
    return temporal_ts
