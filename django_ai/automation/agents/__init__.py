"""``django_ai.automation.agents``: long-running agents (see ``.core``)."""
