"""The app's URLs: the runs API, actions, schemas and the run page.

Mount them under a prefix of your choice (the README uses ``statezero/``)::

    path("statezero/", include("django_bridge.urls")),

Endpoints (see docs/http-api.md): ``runs/``, ``actions/<name>/``, ``actions-schema/``,
``schema/`` (OpenAPI), ``docs/`` (the same document in Swagger UI), ``ui/`` and
``ui/runs/<id>/`` (the run page).
"""

from django.urls import path

from .api.routes import api_urlpatterns
from .api.schema import OpenAPISchemaView
from .views import api_docs, run_page, runs_page

app_name = "django_bridge"

urlpatterns = [
    *api_urlpatterns(),
    path("schema/", OpenAPISchemaView.as_view(), name="schema"),
    path("docs/", api_docs, name="api-docs"),
    path("ui/", runs_page, name="runs-page"),
    path("ui/runs/<int:pk>/", run_page, name="run-page"),
]
