"""Settings for worker subprocesses started by tests/test_durability.py.

The test suite's settings plus the durability workflows, and the test database's name from
``DURABILITY_DB_NAME`` (the test process passes its own, so the worker reads and writes the
rows the test sees; with SQLite that is the ``AUTOMATION_TEST_DB`` file anyway).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import AUTOMATION, DATABASES

AUTOMATION = {
    **AUTOMATION,
    "WORKFLOW_MODULES": [
        *AUTOMATION.get("WORKFLOW_MODULES", []),
        "tests.testapp.durability_workflows",
        "tests.testapp.outage_workflows",
        "tests.testapp.event_automations",
    ],
}

if os.environ.get("DURABILITY_AGENTS"):  # tests/test_agents.py's worker subprocesses
    AUTOMATION["WORKFLOW_MODULES"].append("tests.testapp.agent_automations")

if os.environ.get("DURABILITY_DB_NAME"):
    DATABASES = {"default": {**DATABASES["default"], "NAME": os.environ["DURABILITY_DB_NAME"]}}
