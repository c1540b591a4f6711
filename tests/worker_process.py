"""A worker in a separate process: ``python -m django temporal_worker``, for tests that kill it.

The subprocess uses ``tests.durability_settings`` (the test settings plus the durability
workflows) and reaches the test's Temporal server, task queue and database through the
environment variables the management command documents (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_TASK_QUEUE``) and ``DURABILITY_DB_NAME``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """One ``temporal_worker`` subprocess; its output goes to ``log_path``."""

    def __init__(
        self,
        *,
        address: str,
        namespace: str,
        task_queue: str,
        db_name: str,
        log_path: Path,
        args: tuple[str, ...] = (),
        settings: str = "tests.durability_settings",
        pythonpath: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.args = args
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *pythonpath, os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": namespace,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "DURABILITY_DB_NAME": db_name,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "temporal_worker", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # signals sent to the test (Ctrl-C) do not reach it
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no finally blocks, the running step just stops.

        To its process group (its own session): with ``--reload`` the worker is a child of it.
        """
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # also a child left behind by a stopped supervisor
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful: running steps finish first), SIGKILL if it does not exit."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()
