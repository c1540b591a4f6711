"""The run page in a real browser: headless Debian Chromium driven by Playwright, against a
live Django server, the real Temporal dev server and the in-process worker.

CI installs Chromium (``scripts/ensure-system-deps``); without it these tests fail, they do
not skip. Set ``BROWSER_SCREENSHOTS=<dir>`` to keep screenshots of each screen.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_ai.automation.workflows.core import engine
from django_bridge.models import WorkflowRun

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`, or "
            "`scripts/ensure-system-deps`). The browser tests never download a browser."
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop registered on this thread; Django would take
    # the test's own ORM calls for async code. They are synchronous: allow them.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield instance
            finally:
                instance.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture
def page(browser, live_server, dev, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = User.objects.create_user("reviewer", password="pw")
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page, name: str) -> Path:
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-page-{name}.png"
    page.wait_for_timeout(450)  # let the progress bar's transition finish
    page.screenshot(path=str(path), full_page=True)
    return path


def test_expense_approval_end_to_end(page, live_server):
    """Start the guide's expense approval, fill its form on the run page, see it complete."""
    page.goto(f"{live_server.url}/statezero/ui/")
    page.select_option("#start-name", "expense_approval")
    screenshot(page, "runs")
    page.click("#start-button")
    page.wait_for_url(re.compile(r"/statezero/ui/runs/\d+/$"))
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    form = page.locator('[data-screen="form"][data-action="submit_review"]')
    form.wait_for()
    assert form.locator("h2").inner_text() == "Review Expense"
    assert "Please review and approve or reject" in form.inner_text()
    assert form.locator("legend").inner_text() == "Review Details"
    assert form.locator('[data-group="Review Details"] [data-field]').evaluate_all(
        "els => els.map(e => e.dataset.field)"
    ) == [
        "reviewer_notes",
        "priority",
    ]
    assert page.locator("#run-status").inner_text() == "suspended"
    assert page.locator("#history tr[data-step=start_review]").count() == 1
    screenshot(page, "form")

    # An invalid submission shows the server's per-field errors and leaves the run waiting.
    page.click("#submit-action")
    error = page.locator('[data-error-for="reviewer_notes"]')
    error.wait_for()
    assert "blank" in error.inner_text()
    assert WorkflowRun.objects.get(pk=run_id).status == "suspended"

    page.fill("#field-reviewer_notes", "Approved")
    page.select_option("#field-priority", "high")
    page.click("#submit-action")

    done = page.locator('[data-screen="completed"]')
    done.wait_for()
    assert done.locator("h2").inner_text() == "Review Complete"
    assert "Expense has been reviewed" in done.inner_text()
    page.locator("#history tr[data-step=await_review]").wait_for()
    assert page.locator("#progress-label").inner_text() == "100%"
    assert page.locator("#run-status").inner_text() == "completed"
    print("screenshot:", screenshot(page, "completed"))

    run = WorkflowRun.objects.get(pk=run_id)
    assert run.status == "completed"
    assert run.data == {"reviewer_notes": "Approved", "priority": "high"}


def test_page_follows_the_run_through_waiting_and_component_hints(page, live_server, dev):
    """comprehensive_workflow: form -> waiting screen -> (signal) -> completion, by itself."""
    run = engine.start("comprehensive_workflow")
    page.goto(f"{live_server.url}/statezero/ui/runs/{run.pk}/")
    page.locator('[data-screen="form"]').wait_for()
    assert page.locator(".field[data-field=user_name] .help").inner_text() == "How we should greet you"
    page.fill("#field-user_name", "Ann")
    page.click("#submit-action")

    waiting = page.locator('[data-screen="waiting"]')
    waiting.wait_for()
    assert waiting.locator("h2").inner_text() == "Waiting for Confirmation"
    assert "Email confirmation" in waiting.inner_text()
    assert page.locator("#progress-label").inner_text() == "67%"
    screenshot(page, "waiting")

    assert engine.signal("event:confirmation_received") == 1
    done = page.locator('[data-screen="completed"]')
    done.wait_for()  # the page refreshed itself
    assert done.locator("h2").inner_text() == "All Done, Ann!"

    # Component hints and field configs: the guide's property form.
    listing = engine.start("property_listing")
    page.goto(f"{live_server.url}/statezero/ui/runs/{listing.pk}/")
    page.locator('[data-screen="form"]').wait_for()
    amenities = page.locator(".field[data-field=amenities]")
    assert amenities.get_attribute("data-component") == "AmenitiesMultiSelect"
    assert "Select all amenities that apply" in amenities.inner_text()
    assert page.locator("fieldset legend").all_inner_texts() == [
        "Property Information",
        "Contact Details",
        "Other details",
    ]
    assert page.locator("#field-email").get_attribute("type") == "email"
    page.fill("#field-property_name", "Sea View")
    page.fill("#field-property_type", "cabin")
    page.fill("#field-bedrooms", "3")
    page.fill("#field-email", "owner@example.com")
    page.fill("#field-amenities", "wifi\nparking")
    page.click("#submit-action")
    page.locator('[data-screen="completed"]').wait_for()
    assert WorkflowRun.objects.get(pk=listing.pk).data == {"property_name": "Sea View"}
    screenshot(page, "property-completed")


def test_confirm_button_and_history_with_hidden_steps(page, live_server, dev):
    """An action without fields is a button; history rows show their recorded titles, and
    @step(visible=False) rows only when asked."""
    run = engine.start("order_confirmation")
    page.goto(f"{live_server.url}/statezero/ui/runs/{run.pk}/")
    form = page.locator('[data-screen="form"][data-action="confirm_order"]')
    form.wait_for()
    assert form.locator("h2").inner_text() == "Confirm the order"
    assert form.locator("[data-field]").count() == 0
    page.click("#submit-action")
    page.locator('[data-screen="completed"]').wait_for()
    page.locator("#history tr[data-step=bookkeeping]").wait_for(state="attached")

    confirm = page.locator("#history tr[data-step=confirm]")
    assert confirm.locator("td").nth(1).inner_text() == "Confirm the order"
    assert confirm.get_attribute("data-step-type") == "action"
    hidden = page.locator("#history tr[data-step=bookkeeping]")
    assert hidden.is_hidden() and page.locator("#hidden-count").inner_text() == "1"
    page.check("#show-hidden")
    assert hidden.is_visible()
    screenshot(page, "confirm-history")
    assert WorkflowRun.objects.get(pk=run.pk).data["confirmed_by"] == "reviewer"


def test_a_suspended_run_shows_its_timeline(page, live_server, dev):
    """approval waits at its first step: the timeline shows that execution waiting (there is no
    StepExecution row for it), and the page adds entries as the run moves."""
    from playwright.sync_api import expect

    run = dev.wait_until(engine.start("approval"), lambda r: r.status == "suspended")
    page.goto(f"{live_server.url}/statezero/ui/runs/{run.pk}/")
    waiting = page.locator('#timeline tr[data-kind="step"][data-step="wait_for_approval"][data-open="true"]')
    waiting.wait_for()
    assert waiting.locator("td.what").inner_text() == "waiting for manager_approval"
    assert waiting.locator("td").nth(1).inner_text() == "wait for approval"
    assert "since" in waiting.locator("td").nth(3).inner_text()
    assert "No steps finished yet." not in page.content()
    assert page.locator("#timeline-note").is_hidden()
    assert page.locator("#show-hidden-label").is_hidden()  # no @step(visible=False) here
    screenshot(page, "timeline-waiting")

    assert engine.signal("manager_approval", {"approved": True}) == 1
    following = page.locator('#timeline tr[data-kind="step"][data-step="wait_with_timeout"][data-open="true"]')
    # The page refreshes itself; it may first show the step running, before the step blocks.
    expect(following.locator("td.what")).to_have_text("waiting for user_response", timeout=TIMEOUT_MS)
    assert page.locator('#timeline tr[data-kind="signal"]').locator("td.what").inner_text() == (
        "signal manager_approval received"
    )
    first = page.locator('#timeline tr[data-kind="step"][data-step="wait_for_approval"]')
    assert first.get_attribute("data-open") is None
    assert first.locator("td.what").inner_text() == "waited for manager_approval"
    screenshot(page, "timeline-next-wait")


def test_a_run_no_worker_polls_says_so_until_one_does(page, live_server, dev):
    """The run page tells the truth about a run on a task queue nobody polls (semantics: "No worker polling")."""
    from tests.test_missing_workers import InProcessWorker, nobody_queue, start_on

    queue = nobody_queue()
    run = start_on(queue, user_id=7)
    page.goto(f"{live_server.url}/statezero/ui/runs/{run.pk}/")
    notice = page.locator("#no-worker")
    notice.wait_for()
    assert f"no worker is polling task queue '{queue}'" in notice.inner_text()
    assert f"python manage.py temporal_worker --task-queue {queue}" in notice.inner_text()
    page.locator('[data-screen="processing"] h2', has_text="Waiting for a worker").wait_for()
    screenshot(page, "no-worker")

    with InProcessWorker(dev, queue):
        page.locator('[data-screen="completed"]').wait_for()
    assert notice.is_hidden()
