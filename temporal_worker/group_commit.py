"""Group commit: on SQLite, the projection writes of concurrent steps commit together.

SQLite has one writer at a time. Step threads that write at once wait for its lock in
SQLite's busy handler, which sleeps and polls (1, 2, 5, ... 100 ms), so under load writes
queued behind sleeps rather than behind each other: with 16 step threads, a write's p99 was
over a second. Here a step thread hands its write to one writer thread, which commits every
write waiting at that moment in one transaction. Each caller returns only once its own write
has committed (or raises its error), so a step activity still returns only after its
transition is in the database. A few writes nobody needs to wait for (``submit``: a run's
Temporal run id, a step's "running" mark) are queued and left; writes commit in the order
they were queued, and at exit the queue is committed before the process ends. A queued write
can be withdrawn (``Future.cancel()``) until the writer begins it: a "running" mark that the
step's own result, written after it, would overwrite anyway.

Other databases take writes to different rows in parallel: there, and inside a transaction
the caller already holds, a write runs in the caller's thread as it always did.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection, transaction

__all__ = ["GroupCommit", "group_commit", "in_writer"]

T = TypeVar("T")

MAX_BATCH = 100  # writes in one transaction at most
IDLE_SECONDS = 2.0  # the writer thread (and its connection) goes away after this long without writes


_local = threading.local()


def in_writer() -> bool:
    """Whether this thread is the writer (its writes are in the batch's transaction already)."""
    return getattr(_local, "writer", False)


class GroupCommit:
    """One writer thread, started on the first write and gone when idle."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False
        self.transactions = 0  # what the writer committed, for the tests and the bench
        self.writes = 0

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` (database writes, safe to run again after a rollback) committed; its result.

        On SQLite outside a transaction, ``work`` runs in the writer thread, in a transaction
        with the other writes waiting then; elsewhere it runs here, as it is.
        """
        if not self.queues():
            return work()
        return self.submit(work).result()

    def queues(self) -> bool:
        """Whether a write from this thread goes to the writer (SQLite, outside a transaction)."""
        return connection.vendor == "sqlite" and not connection.in_atomic_block

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Queue ``work`` for the writer (only where ``queues()``); done once committed.

        Writes commit in the order they were queued, so a caller that does not wait for one
        write still has it committed before any write it queues later.
        """
        future: Future[T] = Future()
        self._queue.put((work, future))
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._serve, name="projection-writer", daemon=True).start()
        return future

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every write queued so far has committed or failed (at most ``timeout``
        seconds): at exit, for the writes nobody waits for (``submit``)."""
        with self._lock:
            if not self._running:
                return
        # A write that fails was reported to whoever queued it.
        with contextlib.suppress(Exception):
            self.submit(lambda: None).result(timeout)

    def _serve(self) -> None:
        _local.writer = True
        try:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:  # a writer putting a write now sees _running False and starts a thread
                        if self._queue.empty():
                            self._running = False
                            return
                    continue
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                # A write withdrawn while it waited (its future cancelled) is left out; the rest
                # can no longer be withdrawn.
                batch = [(work, future) for work, future in batch if future.set_running_or_notify_cancel()]
                if batch:
                    self._commit(batch)
        except BaseException:  # never expected (_commit answers every write): keep serving
            with self._lock:
                self._running = not self._queue.empty()
                if self._running:
                    threading.Thread(target=self._serve, name="projection-writer", daemon=True).start()
            raise
        finally:
            connection.close()  # this thread's connection

    def _commit(self, batch: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        results = []
        try:
            with transaction.atomic():
                for work, _ in batch:
                    results.append(work())
        except (OperationalError, InterfaceError) as exc:
            # The database is out of reach (or SQLite stayed locked past its timeout): every
            # caller gets the error and waits it out (outages.retrying); a fresh connection next.
            connection.close()
            for _, future in batch:
                future.set_exception(exc)
            return
        except BaseException as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # One write failed (its run row was deleted, say) and the batch rolled back: commit
            # each alone, so only that write's caller gets the error.
            for work, future in batch:
                try:
                    with transaction.atomic():
                        result = work()
                except BaseException as alone:
                    future.set_exception(alone)
                else:
                    future.set_result(result)
                    self.transactions += 1
                    self.writes += 1
            return
        self.transactions += 1
        self.writes += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


group_commit = GroupCommit()
# The writer is a daemon thread: at exit, let it commit what was queued without a wait.
atexit.register(group_commit.flush)
