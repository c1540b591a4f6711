"""Documented import paths (``django_ai.automation...``), re-exporting ``facade``."""
