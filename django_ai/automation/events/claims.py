"""``from django_ai.automation.events import claims``; then ``claims.hold(...)`` / ``claims.release(...)``."""

from facade import claims

hold = claims.hold
release = claims.release

__all__ = ["hold", "release"]
