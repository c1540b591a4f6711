"""Admin pages list runs and link each to its history in the Temporal UI."""

from django.contrib.auth.models import User

from django_ai.automation.workflows.core import engine


def test_admin_lists_runs_with_temporal_link_and_steps(dev, client):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=3))
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.login(username="admin", password="pw")

    listing = client.get("/admin/django_bridge/workflowrun/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "order_fulfillment" in body
    assert f"/namespaces/default/workflows/{run.temporal_workflow_id}" in body

    page = client.get(f"/admin/django_bridge/workflowrun/{run.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    for step_name in ("confirm_payment", "reserve_inventory", "ship_order"):
        assert step_name in text
