"""manage.py start_run / send_signal / watch_run, in-process and as real processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, load_command_class

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.statezero_action import submit_action
from django_bridge.management.commands._cli import AutomationCommand
from facade import AutomationError, UnknownWorkflowError

ROOT = Path(__file__).resolve().parent.parent


COMMANDS = ["start_run", "send_signal", "watch_run", "temporal_setup", "temporal_worker"]


def command_env(address: str, task_queue: str | None = None) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    env["TEMPORAL_ADDRESS"] = address
    if task_queue:
        env["TEMPORAL_TASK_QUEUE"] = task_queue
    return env


def manage(dev, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a management command in a new process, wired to the test's server, queue and DB."""
    env = command_env(dev.client.service_client.config.target_host, dev.task_queue)
    proc = subprocess.run(
        [sys.executable, "-m", "django", *args], cwd=ROOT, env=env, capture_output=True, timeout=timeout
    )
    # bytes, decoded by hand: text mode would turn the progress bar's \r into \n
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_start_run_parses_values_as_json(dev):
    out = run_command("start_run", "signal_demo", "--kw", "who=Jane", "--kw", "count=3")
    run_id = int(out.split(" run ", 1)[1].split(":", 1)[0])
    run = dev.wait_until(run_id, lambda r: r.waiting_signal == "go")
    assert run.data == {"who": "Jane", "count": 3}
    assert f"run page: /statezero/ui/runs/{run_id}/" in out

    with pytest.raises(CommandError, match="count"):
        run_command("start_run", "signal_demo", "--kw", "count=lots")
    with pytest.raises(CommandError, match="no workflow is registered"):
        run_command("start_run", "no_such_workflow")
    with pytest.raises(CommandError, match="key=value"):
        run_command("start_run", "signal_demo", "--kw", "oops")


def test_send_signal(dev):
    first, second = engine.start("signal_demo"), engine.start("signal_demo")
    for run in (first, second):
        dev.wait_until(run, lambda r: r.waiting_signal == "go")
    out = run_command("send_signal", "go", "--payload", '{"who": "cli"}', "--run-id", str(first.pk))
    assert "reached 1 run" in out
    assert dev.wait_until_finished(first).data["who"] == "cli"
    assert dev.wait_until(second, lambda r: r.status == "suspended").status == "suspended"
    with pytest.raises(CommandError, match="not valid JSON"):
        run_command("send_signal", "go", "--payload", "{nope")
    with pytest.raises(CommandError, match="count"):
        run_command("send_signal", "go", "--payload", '{"count": "x"}')
    assert "reached 1 run" in run_command("send_signal", "go")


def test_watch_run_in_process(dev):
    run = engine.start("expense_approval")
    dev.wait_until(run, lambda r: r.current_step == "await_review")
    with pytest.raises(CommandError, match="still suspended") as err:
        run_command("watch_run", str(run.pk), "--timeout", "0.3", "--interval", "0.1")
    assert err.value.returncode == 2
    submit_action(run.pk, "submit_review", {"reviewer_notes": "ok", "priority": "low"})
    out = run_command("watch_run", str(run.pk), "--interval", "0.05")
    assert out.startswith(f"run page: /statezero/ui/runs/{run.pk}/\n\r[")
    assert "completed: Review Complete - Expense has been reviewed" in out
    with pytest.raises(CommandError, match="no workflow run"):
        run_command("watch_run", "987654")


def test_start_run_watch_takes_a_timeout(dev):
    with pytest.raises(CommandError, match="still suspended after 0.3s") as err:
        run_command("start_run", "signal_demo", "--watch", "--timeout", "0.3", "--interval", "0.05")
    assert err.value.returncode == 2
    with pytest.raises(CommandError, match="--timeout limits --watch"):
        run_command("start_run", "signal_demo", "--timeout", "5")


def test_printed_run_page_links_are_absolute_when_the_site_url_is_known(dev, settings):
    settings.AUTOMATION = {**settings.AUTOMATION, "SITE_URL": "http://shop.test:8000/"}
    out = run_command("start_run", "signal_demo", "--kw", "who=Ann")
    run_id = int(out.split(" run ", 1)[1].split(":", 1)[0])
    assert f"run page: http://shop.test:8000/statezero/ui/runs/{run_id}/\n" in out
    dev.wait_until(run_id, lambda r: r.waiting_signal == "go")

    out = run_command("send_signal", "go", "--run-id", str(run_id))
    assert f"run page: http://shop.test:8000/statezero/ui/runs/{run_id}/" in out
    out = run_command("watch_run", str(run_id), "--interval", "0.05")
    assert out.startswith(f"run page: http://shop.test:8000/statezero/ui/runs/{run_id}/\n")

    other = engine.start("signal_demo")
    dev.wait_until(other, lambda r: r.waiting_signal == "go")
    out = run_command("send_signal", "go")
    assert "reached 1 run" in out and "run pages: http://shop.test:8000/statezero/ui/\n" in out
    dev.wait_until_finished(other)


def test_a_site_url_that_is_not_an_address_is_a_check_error(settings):
    from django.core.checks import run_checks

    settings.AUTOMATION = {**settings.AUTOMATION, "SITE_URL": "localhost:8000"}
    errors = [e for e in run_checks() if e.id == "automation.E006"]
    assert errors and "https://shop.example.com" in errors[0].hint


@pytest.mark.slow
def test_commands_as_processes(dev):
    """The real CLI: a live progress bar, exit codes, and a clean exit (os._exit)."""
    proc = manage(
        dev, "start_run", "progress_demo", "--kw", "rounds=3", "--kw", "pause_ms=150", "--watch", "--interval", "0.05"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\r[") >= 3  # redrawn while the run moves
    assert "100%  completed" in proc.stdout and "completed: Worked - 3 rounds" in proc.stdout
    assert " 33%" in proc.stdout or " 67%" in proc.stdout

    broken = engine.start("broken_action")
    dev.wait_until(broken, lambda r: r.status == "suspended")
    submit_action(broken.pk, "break_it", {"note": "n"})
    proc = manage(dev, "watch_run", str(broken.pk))
    assert proc.returncode == 1
    assert "failed" in proc.stdout and "cannot handle" in proc.stderr

    waiting = engine.start("signal_demo")
    dev.wait_until(waiting, lambda r: r.waiting_signal == "go")
    proc = manage(dev, "send_signal", "go", "--run-id", str(waiting.pk), "--payload", '{"who": "process"}')
    assert proc.returncode == 0, proc.stderr
    assert "reached 1 run" in proc.stdout
    assert dev.wait_until_finished(waiting).data["who"] == "process"


# ---------------------------------------------------------------------------- the command base


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_uses_the_one_base(name):
    command = load_command_class("django_bridge", name)
    assert isinstance(command, AutomationCommand)
    assert "run_from_argv" not in vars(type(command)) and "execute" not in vars(type(command))


class Failing(AutomationCommand):
    def handle(self, *args, **options):
        raise UnknownWorkflowError("no workflow is registered as 'x'; registered: a, b")


def test_library_errors_become_command_errors():
    with pytest.raises(CommandError, match="no workflow is registered as 'x'") as err:
        call_command(Failing())
    assert not isinstance(err.value, AutomationError)


def test_temporal_setup_unreachable_says_how_to_start_a_server():
    proc = subprocess.run(
        [sys.executable, "-m", "django", "temporal_setup"],
        cwd=ROOT,
        env=command_env("127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "CommandError: cannot list search attributes on 127.0.0.1:1" in proc.stderr
    assert "temporal server start-dev" in proc.stderr and "--wait" in proc.stderr
    assert "make " not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_worker_process_stops_cleanly_on_sigterm(temporal_dev):
    address = temporal_dev.client.service_client.config.target_host
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "temporal_worker", "--task-queue", f"cli-test-{os.getpid()}"],
        cwd=ROOT,
        env={**command_env(address), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # printed once the checks passed, before polling starts
        assert first.startswith(f"worker on {address}"), first + proc.stderr.read()
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "worker stopped" in out and "Traceback" not in err
