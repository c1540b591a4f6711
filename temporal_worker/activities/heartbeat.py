"""One daemon thread that heartbeats every running step of this worker."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

from temporalio import activity

__all__ = ["HeartbeatTicker", "heartbeats"]


class HeartbeatTicker:
    """Heartbeats every registered activity on a schedule, from one shared thread.

    Steps are plain synchronous methods that never heartbeat themselves; without heartbeats a
    step on a dead worker is only retried after its whole start-to-close timeout. One shared
    thread costs less than a thread per step. ``paused`` exists for tests that stand in for a
    stalled worker.
    """

    TICK = 0.2

    def __init__(self) -> None:
        self.paused = False
        self._beats: dict[object, list[Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def beating(self, interval: float) -> Iterator[None]:
        token = object()
        with self._lock:
            self._beats[token] = [contextvars.copy_context(), interval, time.monotonic() + interval]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="step-heartbeats", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._beats.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            if self.paused:
                continue
            now = time.monotonic()
            with self._lock:
                due = [beat for beat in self._beats.values() if beat[2] <= now]
                for beat in due:
                    beat[2] = now + beat[1]
            for ctx, _, _ in due:
                try:
                    ctx.run(activity.heartbeat)
                except Exception:  # the step finished meanwhile
                    pass


heartbeats = HeartbeatTicker()
