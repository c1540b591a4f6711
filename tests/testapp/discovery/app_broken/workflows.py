"""A workflows module whose own import fails: discovery must not hide that."""

import rules_missing_dependency  # noqa: F401
