from django.apps import AppConfig, apps


class DjangoBridgeConfig(AppConfig):
    name = "django_bridge"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from facade.contract import discover_workflow_modules

        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import automation_settings

        discover_workflow_modules(
            [app.name for app in apps.get_app_configs()], list(automation_settings.WORKFLOW_MODULES)
        )
        from .signals import connect_event_models

        connect_event_models()
