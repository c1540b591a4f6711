"""Describing actions for form UIs (``GET actions-schema/``), and documenting API operations.

An action's description comes from its serializer (types, required, choices, help text,
limits, the format DRF answers ``OPTIONS`` with) and from its ``StepDisplayMetadata``
(field groups and field display configs)::

    {"name": "submit_review", "workflow": "expense_approval", "step": "await_review",
     "step_title": "await review", "url": "/statezero/actions/submit_review/",
     "run_field": "workflow_run_id", "response": "current_step_display",
     "display": {"display_title": "Review Expense", "field_groups": [...], ...},
     "fields": [{"name": "reviewer_notes", "type": "string", "required": true,
                 "max_length": 500, "label": "Reviewer notes", "allow_null": false,
                 "group": "Review Details", "display_config": null}, ...]}
"""

from __future__ import annotations

import json
from typing import Any

from django.urls import NoReverseMatch, reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.metadata import SimpleMetadata
from rest_framework.utils.encoders import JSONEncoder

from facade.contract import ActionInfo

from .serializers import action_serializer

__all__ = ["RUN_FIELD", "describe_action", "describe_field", "document"]

RUN_FIELD = "workflow_run_id"
EMPTY_DISPLAY: dict[str, Any] = {
    "display_title": "",
    "display_description": "",
    "field_groups": [],
    "field_display_configs": [],
}


def document(**kwargs: Any) -> Any:
    """``extend_schema`` that works whatever ``REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS']`` says.

    drf-spectacular builds an operation's schema class on top of the method's ``schema``
    attribute, else on DEFAULT_SCHEMA_CLASS (DRF's own inspector unless the project points it
    at drf-spectacular); setting the attribute keeps this API documented in every project.
    """

    def decorate(fn: Any) -> Any:
        fn.schema = AutoSchema
        return extend_schema(**kwargs)(fn)

    return decorate


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=JSONEncoder))


def describe_field(
    name: str, field: serializers.Field, *, group: str | None = None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, **SimpleMetadata().get_field_info(field)}
    info["allow_null"] = bool(getattr(field, "allow_null", False))
    if getattr(field, "allow_blank", None) is not None:
        info["allow_blank"] = bool(field.allow_blank)
    default = getattr(field, "default", empty)
    if default is not empty and not callable(default):
        try:
            info["default"] = _jsonable(default)
        except (TypeError, ValueError):
            pass
    if isinstance(field, serializers.ListField) or getattr(field, "many", False):
        info["many"] = True
    info["group"] = group
    info["display_config"] = config
    if config and config.get("display_help_text") and not info.get("help_text"):
        info["help_text"] = config["display_help_text"]
    return _jsonable(info)


def describe_action(info: ActionInfo, request: Any = None) -> dict[str, Any]:
    display = {**EMPTY_DISPLAY, **(info.display or {})}
    groups = {n: g.get("display_title") or "" for g in display["field_groups"] for n in g.get("field_names") or []}
    configs = {c["field_name"]: c for c in display["field_display_configs"] if c.get("field_name")}
    serializer = action_serializer(info)(context={"request": request})
    fields = [
        describe_field(name, field, group=groups.get(name), config=configs.get(name))
        for name, field in serializer.fields.items()
        if name != RUN_FIELD and not field.read_only and not isinstance(field, serializers.HiddenField)
    ]
    try:
        url = reverse("django_bridge:action", args=[info.name])
    except NoReverseMatch:
        url = None
    return {
        "name": info.name,
        "workflow": info.workflow,
        "step": info.step,
        "step_title": info.step_title,
        "url": url,
        "run_field": RUN_FIELD,
        "fields": fields,
        "display": display,
        "response": info.response_serializer.__name__ if info.response_serializer else "current_step_display",
    }
