"""Failures the tests cause on purpose are reported in one line, without tracebacks; any other
failure keeps its traceback (``ExpectedFailureFilter`` in tests/settings.py LOGGING)."""

from __future__ import annotations

import json
import logging

import pytest
from temporalio.exceptions import ApplicationError

from django_ai.automation.workflows.core import engine
from facade import WorkflowStatus
from facade.testing import ExpectedFailureFilter
from temporal_worker import testing
from tests.testapp import guide_compensation  # noqa: F401  (registers the workflows)
from tests.testapp.services import external_service, reset_all


@pytest.fixture(autouse=True)
def _services():
    reset_all()
    yield
    reset_all()


def test_a_step_failing_on_purpose_is_one_line_per_attempt_with_no_traceback(dev, caplog):
    caplog.set_level(logging.WARNING)
    run = dev.wait_until_finished(engine.start("risky", something_wrong=False))
    assert run.status == WorkflowStatus.FAILED
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "risky_step' attempt" in m] == [
        f"workflow 'risky' run {run.pk} step 'risky_step' attempt 1/2 raised ValueError: Boom!",
        f"workflow 'risky' run {run.pk} step 'risky_step' attempt 2/2 raised ValueError: Boom!",
    ]
    assert not [m for m in messages if m.startswith("Completing activity as failed")]
    assert not [r for r in caplog.records if r.exc_info]


def test_an_on_fail_handler_failing_on_purpose_keeps_its_line_and_says_where(dev, caplog):
    external_service.failing.add("notify_failure")
    run = dev.wait_until_finished(engine.start("failing_cleanup"))
    [record] = [r for r in caplog.records if "@on_fail handler 'cleanup' raised" in r.getMessage()]
    assert record.exc_info is None
    assert record.getMessage().endswith(
        "(RuntimeError: external.notify_failure is down, at tests/testapp/services.py:36)"
    )
    assert run.status == WorkflowStatus.FAILED


def record_of(
    exc: BaseException, msg: str = "Completing activity as failed ({'activity_id': '1'})"
) -> logging.LogRecord:
    return logging.getLogger("temporalio.activity").makeRecord(
        "temporalio.activity", logging.WARNING, "x", 0, msg, (), (type(exc), exc, exc.__traceback__)
    )


def raised(code: str, filename: str, **names) -> BaseException:
    """The exception ``code`` raises, as if raised in ``filename``."""
    try:
        exec(compile(code, filename, "exec"), {"ApplicationError": ApplicationError, **names})
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def test_failures_raised_anywhere_else_keep_their_traceback(tmp_path):
    only_tests = ExpectedFailureFilter(paths=[tmp_path / "tests"])
    library = testing._LIBRARY

    # Not on purpose: raised by the library (a bug), by the standard library, by user code.
    for exc in (
        raised("raise KeyError('seq')", f"{library}/activities/steps.py"),
        raised("json.loads('{')", str(tmp_path / "app" / "workflows.py"), json=json),
        raised("raise ValueError('boom')", str(tmp_path / "app" / "workflows.py")),
    ):
        record = record_of(exc)
        assert only_tests.filter(record) and record.exc_info is not None, exc

    # On purpose: raised in the tests' own code, or an ApplicationError the library raises by design.
    for exc in (
        raised("raise ValueError('boom')", str(tmp_path / "tests" / "testapp" / "workflows.py")),
        raised("raise ApplicationError('row deleted', non_retryable=True)", f"{library}/activities/__init__.py"),
    ):
        assert not only_tests.filter(record_of(exc)), exc
    # An ApplicationError raised by user code is theirs to report.
    user_error = raised("raise ApplicationError('nope')", str(tmp_path / "app" / "workflows.py"))
    assert only_tests.filter(record_of(user_error))

    other = record_of(raised("raise ValueError('boom')", str(tmp_path / "tests" / "x.py")), msg="cleanup failed")
    assert only_tests.filter(other) and other.exc_info is None
    assert other.getMessage() == "cleanup failed (ValueError: boom, at tests/x.py:1)"
