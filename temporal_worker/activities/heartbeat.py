"""One daemon thread that heartbeats every running step of this worker, with its details."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

from temporalio import activity

__all__ = ["Beat", "HeartbeatTicker", "heartbeats"]


class Beat:
    """One activity's heartbeat. ``details`` travel with every heartbeat and reach the next
    attempt of the activity (``activity.info().heartbeat_details``) if this one dies."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.details: tuple[Any, ...] = ()
        self.context = contextvars.copy_context()
        self.due = time.monotonic() + interval

    def send_now(self, *details: Any) -> None:
        """Set the details and heartbeat them at once (call from the activity's own thread)."""
        self.details = details
        activity.heartbeat(*details)


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
        self._beats: dict[object, Beat] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def beating(self, interval: float) -> Iterator[Beat]:
        token = object()
        beat = Beat(interval)
        with self._lock:
            self._beats[token] = beat
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="step-heartbeats", daemon=True)
                self._thread.start()
        try:
            yield beat
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
                due = [beat for beat in self._beats.values() if beat.due <= now]
                for beat in due:
                    beat.due = now + beat.interval
            for beat in due:
                try:
                    beat.context.run(activity.heartbeat, *beat.details)
                except Exception:  # the step finished meanwhile
                    pass


heartbeats = HeartbeatTicker()
