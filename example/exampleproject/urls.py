from django.contrib import admin
from django.urls import include, path
from shop import event_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("runs/start/", views.start_run, name="start-run"),
    path("runs/signal/", views.send_signal, name="send-signal"),
    path("runs/cancel/", views.cancel_run, name="cancel-run"),
    path("runs/table/", views.runs_table, name="runs-table"),
    # Model events: reservations whose saves trigger callbacks and event workflows.
    path("events/", event_views.events_page, name="events"),
    path("events/reservations/", event_views.reservation_create, name="reservation-create"),
    path("events/reservations/<int:pk>/", event_views.reservation_change, name="reservation-change"),
    path("admin/", admin.site.urls),
    # Log in / log out (Django's views at LOGIN_URL, /accounts/login/): the run pages and the API
    # ask for a user and send anonymous visitors here.
    path("accounts/", include("django.contrib.auth.urls")),
    # The library's HTTP API (runs, human-step actions, schemas), its run pages and API docs.
    path("statezero/", include("django_bridge.urls")),
]
