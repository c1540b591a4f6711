"""Settings: each a namespaced dict (``settings.AUTOMATION``, ``settings.AUTOMATION_API``) read through defaults.

``AppSettings`` follows Django REST framework's ``APISettings``: attribute access falls back to
the defaults, values naming code may be dotted import paths, values are cached and the cache is
dropped when Django's ``setting_changed`` signal names the setting (so ``override_settings``
works). Unknown keys are an error, so a typo is not silently ignored.

Precedence, highest first: ``overrides`` (process-wide, set by the testing helpers), the
environment variables given as ``env`` (one settings file serves the dev server, a cluster and
Temporal Cloud), the user's dict, the defaults. Overrides and the environment are read on
every access, so changing them takes effect at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

__all__ = ["DEFAULTS", "ENV_OVERRIDES", "UNKNOWN_SIGNAL_KEYS_CHOICES", "AppSettings", "automation_settings"]

DEFAULTS: dict[str, Any] = {
    "TEMPORAL_ADDRESS": "localhost:7233",
    "TEMPORAL_NAMESPACE": "default",
    "TASK_QUEUE": "django-automation",
    "TEMPORAL_API_KEY": None,
    "TEMPORAL_TLS": False,
    "TEMPORAL_TLS_CLIENT_CERT": None,  # path to a PEM file, for mTLS
    "TEMPORAL_TLS_CLIENT_KEY": None,
    "TEMPORAL_UI_URL": "http://localhost:8233",
    "WORKFLOW_MODULES": [],
    "STEP_TIMEOUT": 3600.0,  # seconds a single step attempt may run
    "HEARTBEAT_TIMEOUT": 10.0,  # seconds without a heartbeat before a step is retried elsewhere
    "MAX_CONCURRENT_STEPS": 16,  # worker threads running steps
    # Seconds a run's workflow task may wait for the worker that has the run in memory before
    # Temporal hands it to any worker with the run's whole history (to replay); Temporal's
    # default. Longer keeps a busy worker's backlog after a signal to thousands of runs from
    # being handed back to it to replay, and makes the runs of a killed worker wait as long.
    # See docs, "Scaling".
    "STICKY_QUEUE_TIMEOUT": 10.0,
    # Publish run status/step/signal as Temporal search attributes (registered on the namespace
    # first): off unless asked, since each publication is a history event and a visibility
    # write on the server, and Django's rows answer the same questions.
    "SEARCH_ATTRIBUTES": False,
    "START_ATTEMPTS": 3,  # tries to reach Temporal when starting a run before it is marked failed
    # Seconds the worker keeps retrying its own database work (loading a run, recording a
    # transition) through a database outage before an attempt fails; see "Database outages".
    "DATABASE_OUTAGE_ALLOWANCE": 600.0,
    # Treat connection-level database errors raised by a step's own code as an outage too:
    # the step is run again when the database is back, without using one of its attempts.
    "STEP_DATABASE_ERRORS_ARE_OUTAGES": False,
    # Seconds between the worker's sweeps of the model events outbox (changes whose dispatch at
    # commit was lost); a safety net: events are dispatched on commit, not by this sweep.
    "EVENT_SWEEP_INTERVAL": 60.0,
    # The reconciler (temporal_worker/reconcile.py): seconds between the worker's passes over
    # unfinished runs, making rows follow workflows terminated, timed out, reset or lost in
    # Temporal (0 turns the worker's passes off; `manage.py automation_reconcile` runs one);
    # rows checked per pass; and seconds a row must have been unchanged before it is checked
    # (a start, a retry or a transition in flight is left alone).
    "RECONCILE_INTERVAL": 60.0,
    "RECONCILE_BATCH_SIZE": 500,
    "RECONCILE_GRACE": 300.0,
    # Signal payload keys that are not Context fields are never merged; "warn" logs them,
    # "error" refuses the payload (SignalPayloadError, nothing signalled), "ignore" says nothing.
    "UNKNOWN_SIGNAL_KEYS": "warn",
    # Port on which `manage.py temporal_worker` serves Prometheus metrics (the Temporal SDK's
    # and the library's) at /metrics; None serves none. `--metrics-port` overrides it.
    "METRICS_PORT": None,
    "METRICS_HOST": "0.0.0.0",  # the interface it binds ("127.0.0.1": this machine only)
    # OpenTelemetry tracing through temporalio.contrib.opentelemetry (the `tracing` extra):
    # spans for starts, signals, workflows, activities and each step, joined to the caller's trace.
    "TRACING": False,
    # Where the site is served, e.g. "https://shop.example.com": the commands then print absolute
    # run-page links (http://.../statezero/ui/runs/5/) instead of paths. None: paths.
    "SITE_URL": None,
}

UNKNOWN_SIGNAL_KEYS_CHOICES = ("ignore", "warn", "error")

# setting key -> environment variable that overrides it
ENV_OVERRIDES: dict[str, str] = {
    "TEMPORAL_ADDRESS": "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE": "TEMPORAL_NAMESPACE",
    "TASK_QUEUE": "TEMPORAL_TASK_QUEUE",
    "TEMPORAL_API_KEY": "TEMPORAL_API_KEY",
    "TEMPORAL_TLS": "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_UI_URL": "TEMPORAL_UI_URL",
    "SITE_URL": "AUTOMATION_SITE_URL",
}

_TRUE = {"1", "true", "yes", "on"}


def reload_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: drop the cached values of the settings object it names."""
    for instance in _instances:
        if instance.setting_name == setting:
            instance.reload()


class AppSettings:
    """One Django setting holding a dict of keys, read as attributes: ``automation_settings.TASK_QUEUE``."""

    def __init__(
        self,
        setting_name: str,
        defaults: Mapping[str, Any],
        *,
        import_strings: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.setting_name = setting_name
        self.defaults = dict(defaults)
        self.import_strings = frozenset(import_strings)
        self.env = dict(env or {})
        unknown = sorted((self.import_strings | set(self.env)) - set(self.defaults))
        if unknown:
            raise ValueError(f"{setting_name}: import_strings / env name keys without a default: {unknown}")
        # Process-wide overrides, set by the testing helpers; they beat the environment.
        self.overrides: dict[str, Any] = {}
        self._user: dict[str, Any] | None = None  # the checked user dict
        self._cache: dict[str, Any] = {}  # key -> value from the user dict or the defaults, imported
        _instances.append(self)

    # ------------------------------------------------------------------ the user's dict

    def _user_dict(self) -> dict[str, Any]:
        value = getattr(django_settings, self.setting_name, None)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ImproperlyConfigured(
                f"settings.{self.setting_name} must be a dict of settings, not {type(value).__name__}."
            )
        return value

    @property
    def valid_keys(self) -> list[str]:
        return sorted(self.defaults)

    def unknown_keys(self) -> list[str]:
        """The keys of ``settings.<name>`` that are not settings, sorted.

        Raises ImproperlyConfigured when the setting is not a dict.
        """
        return sorted(set(self._user_dict()) - set(self.defaults))

    @property
    def user_settings(self) -> dict[str, Any]:
        """``settings.<name>``, checked (a dict of known keys) once per reload."""
        if self._user is None:
            unknown = self.unknown_keys()
            if unknown:
                raise ImproperlyConfigured(
                    f"settings.{self.setting_name} has unknown keys {unknown}; valid keys are {self.valid_keys}."
                )
            self._user = self._user_dict()
        return self._user

    # ------------------------------------------------------------------ reading

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in self.defaults:
            raise AttributeError(f"unknown {self.setting_name} setting {key!r}")
        user = self.user_settings  # a bad setting is an error whichever source wins
        if key in self.overrides:
            return self._resolve(key, self.overrides[key])
        env_var = self.env.get(key)
        if env_var and os.environ.get(env_var):
            return self._resolve(key, self._from_env(key, os.environ[env_var]))
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = self._resolve(key, user.get(key, self.defaults[key]))
        self._cache[key] = value
        return value

    def _from_env(self, key: str, raw: str) -> Any:
        if isinstance(self.defaults[key], bool):
            return raw.strip().lower() in _TRUE
        return raw

    def _resolve(self, key: str, value: Any) -> Any:
        if key not in self.import_strings or value is None:
            return value
        if isinstance(value, list | tuple):
            return [self._import(key, item) for item in value]
        return self._import(key, value)

    def _import(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # already the object
        try:
            return import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"settings.{self.setting_name}[{key!r}]: cannot import {value!r}: {exc}"
            ) from None

    def reload(self) -> None:
        """Forget the cached values (done when ``setting_changed`` names this setting)."""
        self._user = None
        self._cache.clear()

    # ------------------------------------------------------------------ what the HTTP API calls

    def permission_classes(self) -> list[type]:
        """``PERMISSION_CLASSES``, imported; None is no classes."""
        return list(self.PERMISSION_CLASSES or [])

    def authentication_classes(self) -> list[type] | None:
        """``AUTHENTICATION_CLASSES``, imported; None means DRF's defaults."""
        value = self.AUTHENTICATION_CLASSES
        return None if value is None else list(value)

    def hook(self, key: str) -> Callable[..., Any] | None:
        """A function setting (``RUN_QUERYSET``, ``START_KWARGS``), imported; None when unset."""
        return getattr(self, key)


_instances: list[AppSettings] = []
setting_changed.connect(reload_settings)

automation_settings = AppSettings("AUTOMATION", DEFAULTS, env=ENV_OVERRIDES)
