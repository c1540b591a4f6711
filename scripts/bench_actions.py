"""The action round trip: ``POST <prefix>/actions/<name>/`` until its answer, p50/p95.

For each of ``--n`` runs of the guide's ``expense_approval`` (after ``--warmup`` runs that are
not counted): start the run, wait until its workflow waits at the action (the workflow's own
``current_step_display`` query says so), then time one HTTP POST of
``{"workflow_run_id": ..., "reviewer_notes": ..., "priority": ...}`` to
``/statezero/actions/submit_review/`` until the answer (the run's new display, status
completed) is read. The request goes over a real socket to a threaded WSGI server (the one
``runserver`` uses) in this process, authenticated by a session cookie with its CSRF token;
``--client`` uses Django's test ``Client`` instead (no socket).

Behind it: the Temporal dev server from the virtualenv, the library's worker in this process,
SQLite with ``django_bridge.sqlite.SQLITE_OPTIONS`` in a temporary directory.

The last line printed is one JSON object: ``action_p50_ms``, ``action_p95_ms`` (plus min, max,
mean and the parameters). Target: p50 under 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import bench_common

ACTION_URL = "/statezero/actions/submit_review/"


def configure(db_path: str) -> None:
    bench_common.configure(
        db_path,
        secret_key="bench-actions-not-secret",
        installed_apps=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "rest_framework",
            "django_bridge",
        ],
        automation={"WORKFLOW_MODULES": ["tests.testapp.action_workflows"]},
        logger=("django.request", "ERROR"),
        conn_max_age=None,  # Django's default, which the figures of this bench so far were measured with
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF=__name__,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Poster:
    """POST the action over HTTP to a threaded WSGI server, or through the test Client."""

    def __init__(self, use_client: bool) -> None:
        from django.contrib.auth.models import User
        from django.middleware.csrf import _get_new_csrf_string
        from django.test import Client

        user = User.objects.create_user("bench", password="bench")
        self.client = Client()
        self.client.force_login(user)
        self.session = self.client.cookies["sessionid"].value
        self.csrf = _get_new_csrf_string()
        self.use_client = use_client
        self.server: Any = None
        if not use_client:
            self._serve()

    def _serve(self) -> None:
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=True)
        self.server.set_app(get_wsgi_application())
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="bench-http", daemon=True).start()

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.use_client:
            resp = self.client.post(ACTION_URL, body, content_type="application/json")
            return resp.status_code, resp.json()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(
                "POST",
                ACTION_URL,
                body=json.dumps(body),
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Cookie": f"sessionid={self.session}; csrftoken={self.csrf}",
                    "X-CSRFToken": self.csrf,
                    "Referer": f"http://127.0.0.1:{self.port}/",
                },
            )
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def wait_at_action(run_id: int, timeout: float = 30.0) -> None:
    """Until the workflow itself waits at the action (not only the projection)."""
    from facade import engine

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        display = engine.live_display(run_id)
        if display.get("status") == "suspended" and display.get("current_step") == "await_review":
            return
        time.sleep(0.01)
    raise RuntimeError(f"run {run_id} did not reach the action within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="timed round trips (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed round trips first (default 5)")
    parser.add_argument("--client", action="store_true", help="Django's test Client instead of HTTP over a socket")
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be at least 1 and --warmup at least 0")

    bench_common.setup_paths()
    for var in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"):
        os.environ.pop(var, None)  # always its own dev server
    tmp = tempfile.TemporaryDirectory(prefix="automation-bench-actions-")
    configure(os.path.join(tmp.name, "bench.sqlite3"))

    import django
    from django.core.management import call_command

    django.setup()
    from django.urls import include, path

    globals()["urlpatterns"] = [path("statezero/", include("django_bridge.urls"))]  # ROOT_URLCONF is this module
    call_command("migrate", verbosity=0)

    from facade import engine
    from facade.testing import TemporalTestEnvironment

    env = TemporalTestEnvironment()
    code = 0
    poster = None
    try:
        env.start()
        poster = Poster(args.client)
        via = "Django test Client" if args.client else f"HTTP to a threaded WSGI server on 127.0.0.1:{poster.port}"
        print(
            f"bench_actions: {args.n} action round trips (+{args.warmup} warmup), {via}, Temporal dev server",
            flush=True,
        )
        times: list[float] = []
        for i in range(args.warmup + args.n):
            run = engine.start("expense_approval")
            wait_at_action(run.pk)
            body = {"workflow_run_id": run.pk, "reviewer_notes": f"bench {i}", "priority": "high"}
            t0 = time.perf_counter()
            status, answer = poster.post(body)
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200 or answer.get("status") != "completed":
                raise RuntimeError(f"run {run.pk}: HTTP {status} {answer}")
            if i >= args.warmup:
                times.append(elapsed)
        summary = {
            "action_p50_ms": round(statistics.median(times), 1),
            "action_p95_ms": round(percentile(times, 0.95), 1),
            "action_min_ms": round(min(times), 1),
            "action_max_ms": round(max(times), 1),
            "action_mean_ms": round(statistics.fmean(times), 1),
            "n": args.n,
            "transport": "client" if args.client else "http",
        }
        print(
            f"action round trip: p50 {summary['action_p50_ms']} ms, p95 {summary['action_p95_ms']} ms "
            f"(min {summary['action_min_ms']}, max {summary['action_max_ms']}, mean {summary['action_mean_ms']}); "
            f"target p50 < 100 ms: {'met' if summary['action_p50_ms'] < 100 else 'NOT met'}"
        )
        print(json.dumps(summary), flush=True)
    except Exception as exc:
        print(f"bench_actions failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        if poster is not None:
            poster.close()
        try:
            env.stop()
        finally:
            tmp.cleanup()
            sys.stdout.flush()
            sys.stderr.flush()
            # Leave without interpreter teardown: the Temporal core can crash there (sdk-python #300).
            os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
