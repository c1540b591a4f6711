"""``make dev``'s stack (scripts/dev.py) as a person uses it: the example project on free ports
with its own state directory, driven by headless Chromium, then stopped with SIGTERM.

Starting the whole stack (Temporal dev server, migrate, worker, runserver) takes a while, so
one stack serves the module; the last test stops it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_browser import TIMEOUT_MS, browser  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
READY = "Local stack is up"
START_TIMEOUT = 150.0


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class DevStack:
    """scripts/dev.py in its own session, its output collected line by line."""

    def __init__(self, state_dir: Path) -> None:
        self.django_port, self.temporal_port, self.ui_port = free_ports(3)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        # The example's own settings, not the test suite's, and nothing of the test servers.
        for name in ("DJANGO_SETTINGS_MODULE", "AUTOMATION_TEST_DB", "TEMPORAL_TASK_QUEUE", "AUTOMATION_SITE_URL"):
            env.pop(name, None)
        env.update(
            DJANGO_PORT=str(self.django_port),
            TEMPORAL_PORT=str(self.temporal_port),
            TEMPORAL_UI_PORT=str(self.ui_port),
            DEV_STATE_DIR=str(state_dir),
        )
        self.url = f"http://localhost:{self.django_port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/dev.py"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while READY not in self.output:
            if self.proc.poll() is not None:
                pytest.fail(f"scripts/dev.py exited with {self.proc.returncode} before it was ready:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/dev.py not ready after {START_TIMEOUT:g}s:\n{self.output}")
            time.sleep(0.2)

    def terminate(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"scripts/dev.py did not stop within {timeout:g}s of SIGTERM:\n{self.output}")
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    dev = DevStack(tmp_path_factory.mktemp("dev-state"))
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.kill()


@pytest.fixture
def tab(browser, stack):  # noqa: F811 (the imported fixture)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.mark.browser
def test_the_example_in_a_browser_log_in_fill_the_form_watch_the_table(tab, stack):
    """What the tutorial walks through: log in, start the review from the home page, fill its
    form on the run page, and see the home page's table follow runs with their Context."""
    base = stack.url
    # The run pages link asks for a user: Django's login page, then back where we were going.
    tab.goto(f"{base}/")
    tab.locator("a", has_text="run pages").click()
    tab.wait_for_url(re.compile(r"/accounts/login/\?next=/statezero/ui/$"))
    tab.fill("#id_username", "admin")
    tab.fill("#id_password", "admin")
    tab.click("#login-button")
    tab.wait_for_url(f"{base}/statezero/ui/")
    assert tab.locator("h2", has_text="Recent runs").is_visible()

    # The human step: the home page starts it and opens its run page, where the form is.
    tab.goto(f"{base}/")
    tab.click("button[title^='Human step']")
    tab.wait_for_url(re.compile(r"/statezero/ui/runs/\d+/$"))
    run_id = int(tab.url.rstrip("/").rsplit("/", 1)[1])
    form = tab.locator('[data-screen="form"][data-action="submit_review"]')
    form.wait_for()
    assert form.locator("h2").inner_text() == "Review Expense"
    tab.fill("#field-reviewer_notes", "Receipts attached")
    tab.select_option("#field-priority", "high")
    tab.click("#submit-action")
    done = tab.locator('[data-screen="completed"]')
    done.wait_for()
    assert done.locator("h2").inner_text() == "Review Complete"

    # The home page: the run with its Context; a run started elsewhere appears without a reload.
    tab.goto(f"{base}/")
    row = tab.locator(f'tr[data-run="{run_id}"]')
    assert row.get_attribute("data-status") == "completed"
    assert '"reviewer_notes": "Receipts attached"' in row.locator("code.ctx").inner_text()
    other = tab.context.new_page()
    other.goto(f"{base}/")
    other.click("button[title^='Quick Start 1']")
    other.wait_for_load_state()
    newest = int(other.locator("#runs tr").first.get_attribute("data-run"))
    other.close()
    live = tab.locator(f'tr[data-run="{newest}"][data-status="completed"]')
    live.wait_for()  # the table fetched its rows again by itself
    assert '"email_sent": true' in live.locator("code.ctx").inner_text()

    # The API docs: Swagger UI from the sidecar's files (no network here), the raw file linked.
    tab.goto(f"{base}/statezero/docs/")
    tab.locator(".opblock-summary-path", has_text="/statezero/actions/submit_review/").first.wait_for()
    assert tab.locator("#docs-unavailable").is_hidden()
    assert tab.locator("#raw-json").get_attribute("href") == "/statezero/schema/?format=json"


def test_sigterm_stops_the_stack_without_a_traceback(stack):
    """`make dev` under a process manager: SIGTERM stops web, worker and server, in that order."""
    assert f"{stack.url}/accounts/login/" in stack.output  # the banner says where to log in
    code = stack.terminate()
    out = stack.output
    assert code == 0, out
    assert "Traceback" not in out, out
    assert "[dev] SIGTERM received, shutting down" in out
    assert out.index("stopping web") < out.index("stopping worker") < out.index("stopping temporal")
    assert "[worker] worker stopped" in out  # the children's last words are not cut off
    assert out.rstrip().endswith("[dev] stopped")
