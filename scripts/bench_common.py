"""What ``bench_agents.py``, ``bench_events.py`` and ``bench_actions.py`` share: the Django
settings of a bench on SQLite, and the helpers they measure with and wait with.

In one place so that a change to them reaches every bench, instead of being made in one copy
and not the others. The scripts import it from their own directory, which Python puts on
``sys.path`` when it runs a script (the ``--worker`` processes too: they run their script again).
Its top level imports only the standard library: ``configure`` imports the project's packages,
which ``setup_paths`` puts on the path first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def configure(
    db_path: str,
    *,
    secret_key: str,
    installed_apps: list[str],
    automation: dict[str, Any],
    logger: tuple[str, str] = ("django_temporal_automation", "WARNING"),
    conn_max_age: int | None = 600,
    **extra: Any,
) -> None:
    """Django's settings on the SQLite file ``db_path``, then ``extra`` (more settings).

    ``logger``: the logger shown on the console, and from which level. ``conn_max_age=None``
    leaves Django's default (a connection per request).
    """
    from django.conf import settings

    from django_bridge.sqlite import SQLITE_OPTIONS

    database: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path, "OPTIONS": SQLITE_OPTIONS}
    if conn_max_age is not None:
        database["CONN_MAX_AGE"] = conn_max_age
    name, level = logger
    settings.configure(
        SECRET_KEY=secret_key,
        DEBUG=False,  # DEBUG=True would keep every SQL query in memory
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=installed_apps,
        DATABASES={"default": database},
        AUTOMATION=automation,
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "loggers": {name: {"handlers": ["console"], "level": level}},
        },
        **extra,
    )


def setup_paths() -> None:
    """The scripts' directory (``benchapp``) and the project's (its packages) on ``sys.path``."""
    for path in (HERE, os.path.dirname(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)


def percentile(values: list[float], q: float) -> float:
    """The value ranked nearest to ``q`` (0..1) of the way through the sorted ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    script: str,
    interval: float,
    detail: Callable[[], str] | None = None,
) -> None:
    """Until ``predicate()`` is true, asked every ``interval`` seconds; after ``timeout`` seconds,
    exit with a message naming ``script`` and ``what`` did not happen (and ``detail()``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            message = f"{script}: {what} did not happen within {timeout:.0f}s"
            raise SystemExit(f"{message}; {detail()}" if detail else message)
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class AppendedLines:
    """A file that other processes append lines to, read as it grows."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new_lines(self) -> list[str]:
        """The lines completed since the last call (none while the file does not exist)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        return [line.decode() for line in lines]


def start_worker(
    command: list[str], *, script: str, env: dict[str, str] | None = None, output: list[str] | None = None
) -> subprocess.Popen[str]:
    """The script's ``--worker`` process (``command``), once its first line said it is up.

    The rest of its output is read for good, into ``output`` if given: the Temporal core logs
    its warnings to stdout, and a full pipe would block the worker the next time it logs.
    """
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    line = worker.stdout.readline() if worker.stdout else ""
    if not line.startswith("worker on"):
        stop_worker(worker)
        raise SystemExit(f"{script}: the worker did not start (it said {line!r})")
    lines = [] if output is None else output
    threading.Thread(target=_drain, args=(worker.stdout, lines), daemon=True).start()
    return worker


def _drain(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip())


def stop_worker(worker: subprocess.Popen[str] | None) -> None:
    """The worker process stopped, if it runs: SIGTERM (its clean shutdown), killed after a minute."""
    if worker is not None and worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
