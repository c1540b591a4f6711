"""Is a worker polling a task queue? Temporal's task-queue description, cached for a few seconds
(semantics: "No worker polling").

Temporal lists, per task queue and task type, the workers that polled it and when each last did
(``DescribeTaskQueue``). Polls are long polls: an idle worker's poll stays open up to a minute
(the server's ``matching.longPollExpirationInterval``) and its last access time is when the
poll *arrived*, so a live worker's can be a minute old. A queue whose pollers were all last seen
more than ``STALE_AFTER`` ago has no worker; Temporal forgets a poller about five minutes after
its last poll (``matching.PollerHistoryTTL``), so "none listed" means "none recently".

Everything that tells users whether a worker will pick their runs up reads this module: the runs
API and the run page, ``watch_run``, the admin, ``engine.cancel`` / ``engine.retry`` and the
system check ``automation.W011``. Answers are cached ``CACHE_SECONDS`` per client and queue, so a
run page refreshing every 700 ms costs two describe calls every few seconds, not every refresh.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from django_bridge.conf import automation_settings
from facade import TemporalUnavailableError
from temporal_worker import client as bridge

__all__ = [
    "CACHE_SECONDS",
    "NO_WORKER",
    "POLLING",
    "STALE_AFTER",
    "UNKNOWN",
    "UNREACHABLE",
    "QueueStatus",
    "aqueue_status",
    "clear_cache",
    "configured_queue",
    "queue_status",
    "run_queue_status",
    "safe_queue_status",
    "start_worker_command",
]

logger = logging.getLogger("django_temporal_automation")

# A worker whose last poll is older than this has stopped: more than the server's long-poll
# interval (1 minute by default), after which a live worker polls again.
STALE_AFTER = 90.0
# How long an answer is reused (per client and task queue); "Temporal unreachable" for longer, as
# finding it out can take the whole probe deadline (a server that drops packets).
CACHE_SECONDS = 5.0
UNREACHABLE_CACHE_SECONDS = 15.0
# The deadline of one describe call: a page must not hang on a server that does not answer.
PROBE_TIMEOUT = 5.0

POLLING = "polling"  # a worker polled the queue within STALE_AFTER
NO_WORKER = "no_worker"  # none did: runs on the queue do not move
UNKNOWN = "unknown"  # the server does not say (the time-skipping test server, a refused describe)
UNREACHABLE = "unreachable"  # Temporal itself could not be reached

_TYPES = {"workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY}


@dataclass(frozen=True)
class QueueStatus:
    """Whether a worker polls ``task_queue``, and if not, what to tell the user."""

    task_queue: str
    state: str
    last_poll_at: datetime | None = None  # the latest poll of any worker Temporal lists (UTC)
    last_poller: str = ""  # that worker's identity (``pid@host``)
    problem: str = ""  # empty while a worker polls; otherwise what is wrong
    hint: str = ""  # and what to run about it
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def message(self) -> str:
        """What is wrong and what to run, in one line (empty while a worker polls)."""
        return f"{self.problem}; {self.hint}" if self.hint else self.problem

    @property
    def no_worker(self) -> bool:
        return self.state == NO_WORKER

    @property
    def needs_attention(self) -> bool:
        """Whether UIs should show ``message``: no worker polls, or Temporal is unreachable."""
        return self.state in (NO_WORKER, UNREACHABLE)

    def to_json(self) -> dict[str, Any]:
        return {
            "task_queue": self.task_queue,
            "state": self.state,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "last_poller": self.last_poller,
            "message": self.message,
        }


def configured_queue() -> str:
    """``AUTOMATION["TASK_QUEUE"]``: where runs start and the worker polls by default."""
    return str(automation_settings.TASK_QUEUE)


def start_worker_command(task_queue: str) -> str:
    return f"python manage.py temporal_worker --task-queue {task_queue}"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _judge(task_queue: str, pollers: list[tuple[str, datetime]], now: datetime) -> QueueStatus:
    """The status of a queue from its pollers (identity, last access) of every task type."""
    start = f"start one: {start_worker_command(task_queue)}"
    if not pollers:
        return QueueStatus(
            task_queue,
            NO_WORKER,
            problem=f"no worker is polling task queue {task_queue!r} (none has polled it in the last 5 minutes)",
            hint=start,
            checked_at=now,
        )
    identity, last = max(pollers, key=lambda p: p[1])
    age = (now - last).total_seconds()
    if age <= STALE_AFTER:
        return QueueStatus(task_queue, POLLING, last, identity, checked_at=now)
    return QueueStatus(
        task_queue,
        NO_WORKER,
        last,
        identity,
        problem=(
            f"no worker is polling task queue {task_queue!r} since {last:%Y-%m-%d %H:%M:%S} UTC (the last poll, "
            f"by {identity}, was {_ago(age)})"
        ),
        hint=start,
        checked_at=now,
    )


async def _describe(client: Any, task_queue: str) -> QueueStatus:
    """Ask Temporal, uncached. Temporal unreachable raises (``RPCError`` UNAVAILABLE, ...)."""

    async def pollers_of(kind: TaskQueueType.ValueType) -> list[tuple[str, datetime]]:
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=kind,
        )
        answer = await client.workflow_service.describe_task_queue(request, timeout=timedelta(seconds=PROBE_TIMEOUT))
        return [(p.identity, p.last_access_time.ToDatetime(tzinfo=UTC)) for p in answer.pollers]

    try:
        # This library's workers poll both types; either one seen recently means a worker is there
        # (a worker whose step threads are all busy stops polling activities for a while).
        by_type = await asyncio.gather(*(pollers_of(kind) for kind in _TYPES.values()))
    except RPCError as err:
        if bridge.is_unreachable(err):
            raise
        return QueueStatus(
            task_queue,
            UNKNOWN,
            problem=f"Temporal did not say whether a worker polls task queue {task_queue!r}: {err.message or err.status}",
        )
    return _judge(task_queue, [p for pollers in by_type for p in pollers], datetime.now(UTC))


# (id of the client, task queue[, "down"]) -> (expiry, answer); "down" keys hold what
# safe_queue_status learnt when Temporal could not be reached, which queue_status never returns.
_cache: dict[tuple[Any, ...], tuple[float, QueueStatus]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple[Any, ...]) -> QueueStatus | None:
    entry = _cache.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    return None


def _remember(key: tuple[Any, ...], status: QueueStatus) -> None:
    now = time.monotonic()
    keep = UNREACHABLE_CACHE_SECONDS if status.state == UNREACHABLE else CACHE_SECONDS
    with _cache_lock:
        if len(_cache) > 256:
            for stale in [k for k, (expires, _) in _cache.items() if expires <= now]:
                del _cache[stale]
        _cache[key] = (now + keep, status)


def clear_cache() -> None:
    """Forget every answer (tests that start or stop workers and want to see it at once)."""
    with _cache_lock:
        _cache.clear()


async def aqueue_status(client: Any, task_queue: str) -> QueueStatus:
    """The status of ``task_queue`` (cached), on the event loop; Temporal unreachable raises ``RPCError``."""
    key = (id(client), task_queue)
    cached = _cached(key)
    if cached is not None:
        return cached
    status = await _describe(client, task_queue)
    _remember(key, status)
    return status


def queue_status(task_queue: str | None = None) -> QueueStatus:
    """The status of ``task_queue`` (default ``AUTOMATION["TASK_QUEUE"]``), cached ``CACHE_SECONDS``.

    Temporal unreachable raises ``TemporalUnavailableError``, as every engine call does.
    """
    queue = task_queue or configured_queue()
    cached = _cached((id(bridge.current_client()), queue))
    if cached is not None:
        return cached
    return bridge.call(
        f"describing task queue {queue!r}",
        lambda client: aqueue_status(client, queue),
        timeout=PROBE_TIMEOUT + 1,
    )


def safe_queue_status(task_queue: str | None = None) -> QueueStatus:
    """``queue_status`` for pages and listings, which must work while Temporal is down: an
    unreachable Temporal is the state ``unreachable`` with the ``TemporalUnavailableError``
    message (cached too, so a refreshing page does not try to connect on every request)."""
    queue = task_queue or configured_queue()
    down = (id(bridge.current_client()), queue, "down")
    cached = _cached(down)
    if cached is not None:
        return cached
    try:
        return queue_status(queue)
    except TemporalUnavailableError as exc:
        status = QueueStatus(queue, UNREACHABLE, problem=exc.message)
    except Exception as exc:  # a page must not fail because the probe did; say it, and log it
        logger.warning("describing task queue %r failed: %s", queue, exc, exc_info=True)
        status = QueueStatus(queue, UNKNOWN, problem=f"could not describe task queue {queue!r}: {exc}")
    _remember(down, status)
    return status


def run_queue_status(task_queue: str) -> QueueStatus:
    """``safe_queue_status`` of a run's queue; when no worker polls it but one polls the configured
    queue (``AUTOMATION["TASK_QUEUE"]`` changed since the run started), the message says that
    retrying the run restarts it there."""
    queue = task_queue or configured_queue()
    status = safe_queue_status(queue)
    configured = configured_queue()
    if not status.no_worker or queue == configured:
        return status
    elsewhere = safe_queue_status(configured)
    if elsewhere.state != POLLING:
        return status
    hint = (
        f"a worker polls task queue {configured!r} (AUTOMATION['TASK_QUEUE']): retry the run to restart it there, "
        f"or {status.hint}"
    )
    return replace(status, hint=hint)
