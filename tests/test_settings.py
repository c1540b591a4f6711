"""django_bridge.conf.AppSettings: defaults, precedence, import strings, the cache and its reload."""

from __future__ import annotations

from os.path import join

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils.module_loading import import_string
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import IsAdminUser, IsAuthenticated

from django_bridge.api.conf import API_DEFAULTS, api_settings
from django_bridge.conf import DEFAULTS, AppSettings, automation_settings

# A settings object of its own, so the test server's overrides and env vars do not interfere.
SAMPLE = AppSettings(
    "SAMPLE_SETTINGS",
    {"NAME": "default", "FLAG": False, "COUNT": 1, "HOOK": None, "CLASSES": []},
    import_strings=("HOOK", "CLASSES"),
    env={"NAME": "SAMPLE_NAME", "FLAG": "SAMPLE_FLAG"},
)


@pytest.fixture(autouse=True)
def clean_sample(monkeypatch):
    monkeypatch.delenv("SAMPLE_NAME", raising=False)
    monkeypatch.delenv("SAMPLE_FLAG", raising=False)
    SAMPLE.overrides.clear()
    SAMPLE.reload()
    yield
    SAMPLE.overrides.clear()
    SAMPLE.reload()


def test_attributes_read_through_the_defaults():
    assert SAMPLE.NAME == "default" and SAMPLE.COUNT == 1
    with override_settings(SAMPLE_SETTINGS={"COUNT": 5}):
        assert SAMPLE.COUNT == 5 and SAMPLE.NAME == "default"
    with pytest.raises(AttributeError, match="NOPE"):
        SAMPLE.NOPE  # noqa: B018


def test_overrides_beat_the_environment_which_beats_the_user_dict(monkeypatch):
    with override_settings(SAMPLE_SETTINGS={"NAME": "user"}):
        assert SAMPLE.NAME == "user"  # now cached
        monkeypatch.setenv("SAMPLE_NAME", "env")
        assert SAMPLE.NAME == "env"  # the environment is not served stale from the cache
        SAMPLE.overrides["NAME"] = "override"
        assert SAMPLE.NAME == "override"
        SAMPLE.overrides.clear()
        assert SAMPLE.NAME == "env"
        monkeypatch.delenv("SAMPLE_NAME")
        assert SAMPLE.NAME == "user"


def test_boolean_environment_values_are_parsed(monkeypatch):
    monkeypatch.setenv("SAMPLE_FLAG", "yes")
    assert SAMPLE.FLAG is True
    monkeypatch.setenv("SAMPLE_FLAG", "0")
    assert SAMPLE.FLAG is False


def test_the_cache_is_reloaded_when_the_setting_changes():
    with override_settings(SAMPLE_SETTINGS={"COUNT": 2}):
        assert SAMPLE.COUNT == 2
        with override_settings(SAMPLE_SETTINGS={"COUNT": 3}):
            assert SAMPLE.COUNT == 3
        assert SAMPLE.COUNT == 2
    assert SAMPLE.COUNT == 1


def test_values_are_cached_until_the_signal():
    """Without the signal (a setting changed behind Django's back) the cached value stays."""
    from django.conf import settings

    with override_settings(SAMPLE_SETTINGS={"COUNT": 2}):
        assert SAMPLE.COUNT == 2
        settings.SAMPLE_SETTINGS = {"COUNT": 9}  # assigned directly: no setting_changed
        assert SAMPLE.COUNT == 2
        SAMPLE.reload()
        assert SAMPLE.COUNT == 9


def test_other_settings_changing_do_not_drop_the_cache():
    with override_settings(SAMPLE_SETTINGS={"COUNT": 2}):
        assert SAMPLE.COUNT == 2
        SAMPLE._cache["COUNT"] = "cached"
        with override_settings(AUTOMATION_API={"PAGE_SIZE": 3}):
            assert SAMPLE.COUNT == "cached"


def test_unknown_keys_are_refused_with_the_valid_keys():
    with override_settings(SAMPLE_SETTINGS={"COUNT": 2, "CONT": 3}):
        assert SAMPLE.unknown_keys() == ["CONT"]
        with pytest.raises(ImproperlyConfigured, match=r"SAMPLE_SETTINGS has unknown keys \['CONT'\].*'COUNT'"):
            SAMPLE.NAME  # noqa: B018


def test_a_setting_that_is_not_a_dict_is_refused():
    with override_settings(SAMPLE_SETTINGS=["COUNT"]):
        with pytest.raises(ImproperlyConfigured, match="SAMPLE_SETTINGS must be a dict.*not list"):
            SAMPLE.COUNT  # noqa: B018
        with pytest.raises(ImproperlyConfigured, match="must be a dict"):
            SAMPLE.unknown_keys()


def test_import_strings_are_imported_objects_pass_through():
    with override_settings(
        SAMPLE_SETTINGS={"HOOK": "django.utils.module_loading.import_string", "CLASSES": ["os.path.join", len]}
    ):
        assert SAMPLE.HOOK is import_string
        assert SAMPLE.CLASSES == [join, len]
    SAMPLE.overrides["HOOK"] = "os.path.join"
    assert SAMPLE.HOOK is join


@pytest.mark.parametrize("path", ["no_such_module.thing", "os.path.no_such_name", "nodots"])
def test_an_import_string_that_fails_names_the_setting_and_the_key(path):
    with override_settings(SAMPLE_SETTINGS={"CLASSES": ["os.path.join", path]}):
        with pytest.raises(ImproperlyConfigured) as err:
            SAMPLE.CLASSES  # noqa: B018
    assert "settings.SAMPLE_SETTINGS['CLASSES']" in str(err.value) and repr(path) in str(err.value)


# ---------------------------------------------------------------------------- the two instances


def test_automation_settings_and_api_settings_keep_their_defaults():
    assert automation_settings.setting_name == "AUTOMATION" and automation_settings.defaults == DEFAULTS
    assert api_settings.setting_name == "AUTOMATION_API" and api_settings.defaults == API_DEFAULTS
    assert type(api_settings) is type(automation_settings) is AppSettings


def test_api_settings_accessors():
    assert api_settings.permission_classes() == [IsAuthenticated]
    assert api_settings.authentication_classes() is None
    assert api_settings.hook("RUN_QUERYSET") is None
    with override_settings(
        AUTOMATION_API={
            "PERMISSION_CLASSES": [IsAdminUser],
            "AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
            "START_KWARGS": "django_bridge.api.permissions.owner_start_kwargs",
        }
    ):
        from django_bridge.api.permissions import owner_start_kwargs

        assert api_settings.permission_classes() == [IsAdminUser]
        assert api_settings.authentication_classes() == [BasicAuthentication]
        assert api_settings.hook("START_KWARGS") is owner_start_kwargs
    assert api_settings.permission_classes() == [IsAuthenticated]


def test_api_import_string_error():
    with override_settings(AUTOMATION_API={"RUN_QUERYSET": "myapp.scoping.no_such_hook"}):
        with pytest.raises(ImproperlyConfigured, match=r"AUTOMATION_API\['RUN_QUERYSET'\].*myapp.scoping"):
            api_settings.hook("RUN_QUERYSET")


def test_automation_environment_override_is_read_at_once(monkeypatch):
    saved = dict(automation_settings.overrides)
    automation_settings.overrides.pop("TEMPORAL_UI_URL", None)
    try:
        monkeypatch.delenv("TEMPORAL_UI_URL", raising=False)
        assert automation_settings.TEMPORAL_UI_URL == DEFAULTS["TEMPORAL_UI_URL"]
        monkeypatch.setenv("TEMPORAL_UI_URL", "https://ui.example")
        assert automation_settings.TEMPORAL_UI_URL == "https://ui.example"
        automation_settings.overrides["TEMPORAL_UI_URL"] = "https://override.example"
        assert automation_settings.TEMPORAL_UI_URL == "https://override.example"
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
