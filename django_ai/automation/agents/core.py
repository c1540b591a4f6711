"""``from django_ai.automation.agents.core import agent, handler, AgentManager``"""

from facade import AgentManager, agent, handler

__all__ = ["AgentManager", "agent", "handler"]
