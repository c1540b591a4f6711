"""``from django_ai.automation.workflows.metadata import StepDisplayMetadata, ...``"""

from facade import FieldDisplayConfig, FieldGroup, StepDisplayMetadata

__all__ = ["FieldDisplayConfig", "FieldGroup", "StepDisplayMetadata"]
