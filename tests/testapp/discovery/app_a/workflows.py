from pydantic import BaseModel

from django_ai.automation.workflows.core import complete, step, workflow
from tests.testapp.discovery import IMPORTED

IMPORTED.append(__name__)


@workflow("rules_discovered")
class DiscoveredWorkflow:
    class Context(BaseModel):
        pass

    @step(start=True)
    def only(self):
        return complete()
