"""The local stack behind ``make dev``: Temporal dev server, worker and Django, until Ctrl-C.

1. the Temporal dev server from the virtualenv, state in ``.temporal/dev.sqlite3`` (so runs
   survive a restart), UI on :8233, with the search attributes runs publish;
2. ``migrate`` and an ``admin`` superuser for the example project (SQLite file);
3. ``manage.py temporal_worker --reload`` (restarted when the code changes) and ``manage.py runserver``.

Ctrl-C or SIGTERM stops them in reverse order, each with a deadline, and exits 0. Ports come
from DJANGO_PORT, TEMPORAL_PORT and TEMPORAL_UI_PORT; DJANGO_HOST sets the address Django binds.
DEV_STATE_DIR moves the state (Temporal's and Django's SQLite files, the server log, the lock)
out of ``.temporal/`` and ``example/db.sqlite3``, e.g. for a second stack or a test.
The worker and web process get AUTOMATION_SITE_URL, so the commands print absolute run-page links.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = ["example/manage.py"]
STATE_DIR = Path(os.environ.get("DEV_STATE_DIR") or ROOT / ".temporal").resolve()
SEARCH_ATTRIBUTES = ("AutomationStatus", "AutomationStep", "AutomationWaitingFor")
STOP_DEADLINE = 15.0
# The example's settings use it for AUTOMATION["SITE_URL"]; another port is passed on.
DEFAULT_SITE_URL = "http://localhost:8000"


class Stop(Exception):
    """Ctrl-C or SIGTERM: leave whatever we are doing and shut down."""


def on_signal(signum: int, frame: object) -> None:
    # Ignore further signals at once: a second Ctrl-C or SIGTERM (a process manager, `make`
    # passing on its own) must neither raise inside the shutdown nor cut it short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"[dev] {name}={raw!r} is not a port number")


def ensure_free(port: int, what: str, env_name: str) -> None:
    with socket.socket() as sock:
        # As the servers do: connections of a previous run in TIME_WAIT must not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(
                f"[dev] port {port} ({what}) is already in use: another `make dev` or Temporal server may be running "
                f"(see `ss -ltnp | grep :{port}`). Stop it, or pick another port: {env_name}=<port> make dev"
            )


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


class Stack:
    """The child processes, started in order and stopped in reverse."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.relays: list[threading.Thread] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C in the terminal reaches only us, and we stop the
        # children in order (web, worker, then the server the worker still needs).
        if log is not None:
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        else:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            relay = threading.Thread(target=self._relay, args=(name, proc), daemon=True)
            relay.start()
            self.relays.append(relay)
        self.children.append((name, proc))
        return proc

    @staticmethod
    def _relay(name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
            sys.stdout.flush()

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self) -> None:
        for name, proc in reversed(self.children):
            if proc.poll() is not None:
                continue
            say(f"stopping {name} (pid {proc.pid})")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {STOP_DEADLINE:g}s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Print what the children said last ("worker stopped") before we exit.
        for relay in self.relays:
            relay.join(timeout=2)
        self.children.clear()


def wait_until(check, what: str, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        gone = stack.exited()
        if gone:
            raise RuntimeError(f"{gone[0]} exited with status {gone[1]} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:g}s")
        time.sleep(0.2)


def temporal_ready(address: str) -> bool:
    # Ready means the default namespace answers with our search attributes registered.
    try:
        probe = subprocess.run(
            [
                str(BIN / "temporal"),
                "operator",
                "search-attribute",
                "list",
                "--address",
                address,
                "--namespace",
                "default",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0 and all(name in probe.stdout for name in SEARCH_ATTRIBUTES)


def manage(args: list[str], env: dict[str, str]) -> None:
    # Own session, like the long-running children: on Ctrl-C we stop it, it prints no traceback.
    result = subprocess.run(
        [sys.executable, *MANAGE, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed with status {result.returncode}")


ENSURE_SUPERUSER = """
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="admin").exists():
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    print("created superuser admin (password admin)")
"""


def lock_checkout() -> object:
    """Hold .temporal/dev.lock: two stacks must never share the server's and Django's SQLite files."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    lock = open(STATE_DIR / "dev.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        sys.exit(
            f"[dev] `make dev` is already running from this checkout (pid {holder}); stop it first (Ctrl-C there)."
        )
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock  # the lock lasts as long as this file object, i.e. the whole run


def main() -> int:
    lock = lock_checkout()  # noqa: F841
    django_host = os.environ.get("DJANGO_HOST", "127.0.0.1")
    django_port = port_from_env("DJANGO_PORT", 8000)
    temporal_port = port_from_env("TEMPORAL_PORT", 7233)
    ui_port = port_from_env("TEMPORAL_UI_PORT", 8233)
    ensure_free(temporal_port, "Temporal gRPC", "TEMPORAL_PORT")
    ensure_free(ui_port, "Temporal UI", "TEMPORAL_UI_PORT")
    ensure_free(django_port, "Django", "DJANGO_PORT")

    temporal_address = f"127.0.0.1:{temporal_port}"
    ui_url = f"http://localhost:{ui_port}"
    site = site_url(django_host, django_port)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The worker and web process talk to the server we start, whatever the shell says.
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_UI_URL": ui_url,
        # Commands run in this stack (start_run, watch_run, send_signal) print absolute links.
        "AUTOMATION_SITE_URL": site,
    }
    if os.environ.get("DEV_STATE_DIR"):
        env["EXAMPLE_SQLITE_PATH"] = str(STATE_DIR / "example.sqlite3")
    for var in ("TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
        env.pop(var, None)
    server_log = STATE_DIR / "server.log"
    state_db = STATE_DIR / "dev.sqlite3"

    stack = Stack()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        say(f"starting the Temporal dev server on {temporal_address} (log: {shown(server_log)})")
        sa_flags = [arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")]
        stack.start(
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(state_db),
                "--ip",
                "127.0.0.1",
                "--port",
                str(temporal_port),
                "--ui-port",
                str(ui_port),
                # No calls home: no UI news feed, no server version check.
                "--ui-disable-news-fetch",
                "--dynamic-config-value",
                "frontend.enableServerVersionCheck=false",
                # Our search attributes are registered as it starts: let it cache them, as a
                # production server does (the dev server reads them from its database for every
                # workflow task otherwise).
                "--dynamic-config-value",
                "system.forceSearchAttributesCacheRefreshOnRead=false",
                *sa_flags,
            ],
            env,
            log=server_log,
        )
        wait_until(
            lambda: reachable(temporal_port) and temporal_ready(temporal_address), "the Temporal server", 90, stack
        )
        say("Temporal is up")

        manage(["migrate", "--noinput", "--verbosity", "1"], env)
        manage(["shell", "--no-imports", "-c", ENSURE_SUPERUSER], env)

        # --reload: the worker restarts when code changes, so a workflow added meanwhile runs.
        stack.start("worker", [sys.executable, *MANAGE, "temporal_worker", "--reload"], env)
        stack.start("web", [sys.executable, *MANAGE, "runserver", f"{django_host}:{django_port}", "--noreload"], env)
        probe_host = "127.0.0.1" if django_host in ("0.0.0.0", "::", "") else django_host
        wait_until(lambda: http_ok(f"http://{probe_host}:{django_port}/"), "Django", 60, stack)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{ui_port}/"), "the Temporal UI", 30, stack)
        print_banner(site, temporal_address, temporal_port, ui_url, shown(state_db))

        while True:
            gone = stack.exited()
            if gone:
                say(f"{gone[0]} exited with status {gone[1]}; stopping the rest")
                return 1
            time.sleep(0.5)
    except Stop as stop:
        say(f"{stop} received, shutting down")
        return 0
    except RuntimeError as err:
        say(f"error: {err}")
        if "temporal" in str(err).lower():
            say(f"see {shown(server_log)}")
        return 1
    finally:
        # A second Ctrl-C must not cut the orderly shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        say("stopped")


def site_url(host: str, port: int) -> str:
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "") else host
    return f"http://{shown_host}:{port}"


def shown(path: Path) -> str:
    """A state file as the banner shows it: relative to the checkout when it is inside."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def print_banner(site: str, temporal_address: str, temporal_port: int, ui_url: str, state_db: str) -> None:
    # What another terminal needs to reach this stack when it is not on the example's defaults.
    prefix = "" if temporal_port == 7233 else f"TEMPORAL_ADDRESS={temporal_address} "
    if site != DEFAULT_SITE_URL:
        prefix += f"AUTOMATION_SITE_URL={site} "
    if os.environ.get("DEV_STATE_DIR"):
        prefix += f"EXAMPLE_SQLITE_PATH={STATE_DIR / 'example.sqlite3'} "
    manage = f"{prefix}.venv/bin/python example/manage.py"
    shell = f'{manage} shell -v0 -c "from django_ai.automation.workflows.core import engine; '
    rows = [
        ("Example app", f"{site}/", "start runs, send signals, watch them (live, with their Context)"),
        ("Run pages", f"{site}/statezero/ui/", "each run's page: forms of human steps, history (log in first)"),
        ("Log in", f"{site}/accounts/login/", "user admin, password admin (local development only)"),
        ("API docs", f"{site}/statezero/docs/", "the HTTP API in Swagger UI (raw: /statezero/schema/)"),
        ("Model events", f"{site}/events/", "reservations whose saves trigger callbacks and timed runs"),
        ("Django admin", f"{site}/admin/", "operate runs: cancel, retry, signal"),
        ("Temporal UI", f"{ui_url}/", "each run's history: steps, timers, signals"),
        ("Temporal", temporal_address, f"state kept in {state_db}"),
    ]
    width = max(len(url) for _, url, _ in rows)
    table = "\n".join(f"   {name:<13} {url:<{width}}  {note}" for name, url, note in rows)
    rule = "=" * 76
    print(
        f"""
{rule}
 Local stack is up. Ctrl-C stops everything.

{table}

 Start runs from another terminal (each prints its run page):
   {manage} start_run user_onboarding --kw user_id=1 --watch --timeout 30
   {manage} start_run expense_approval        # a form to fill on its run page
   {shell}print(engine.start('approval'))"
 Signal every run waiting on manager_approval (prints how many it reached):
   {manage} send_signal manager_approval --payload '{{"approved": true, "notes": "Looks good"}}'
   {shell}print(engine.signal('manager_approval', {{'approved': True, 'notes': 'Looks good'}}))"
{rule}
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
