"""Display metadata that UIs read from a run (workflows guide, "Display Metadata")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FieldDisplayConfig", "FieldGroup", "StepDisplayMetadata"]


@dataclass(frozen=True)
class FieldGroup:
    """A titled group of form fields."""

    display_title: str = ""
    display_description: str = ""
    field_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FieldDisplayConfig:
    """How one form field is rendered: component hint, option filter, help text."""

    field_name: str
    display_component: str | None = None
    filter_queryset: dict[str, Any] | None = None
    display_help_text: str | None = None


@dataclass(frozen=True)
class StepDisplayMetadata:
    """Title, description and form layout of a step, for form UIs."""

    display_title: str = ""
    display_description: str = ""
    field_groups: list[FieldGroup] = field(default_factory=list)
    field_display_configs: list[FieldDisplayConfig] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
