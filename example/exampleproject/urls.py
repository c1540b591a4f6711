from django.contrib import admin
from django.urls import include, path
from shop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("runs/start/", views.start_run, name="start-run"),
    path("runs/signal/", views.send_signal, name="send-signal"),
    path("admin/", admin.site.urls),
    # The library's HTTP API (runs, human-step actions, schemas) and its run pages.
    path("statezero/", include("django_bridge.urls")),
]
