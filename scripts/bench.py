"""``make bench``: this library against hand-written ``temporalio`` workflows doing the same.

Everything runs on one Temporal dev server started from the virtualenv as the test suite
starts it (the library's search attributes registered at launch and cached, as a production
server caches them), with SQLite (with ``django_bridge.sqlite.SQLITE_OPTIONS``) in a temporary
directory. One process hosts the
workers on one event loop, each with a thread pool of the same size for its synchronous
activities, and the threads that start the runs:

* ``facade``: the library's worker as it ships (the interpreter workflow, the step activity
  and its projection writes); runs started with ``engine.start``, signalled with
  ``engine.signal``. The library runs with its defaults: runs publish no search attributes
  (``--search-attributes on`` publishes them).
* ``raw``: plain ``temporalio`` workflows with one activity per step, on a worker that runs
  workflows the way the library's worker does (outside the sandbox, the same sticky queue
  timeout): the like-for-like comparison, which every ``raw_*`` figure and every ratio uses.
* ``raw_default``: the same raw workflow on a worker at temporalio's defaults (the
  sandbox), for the throughput only: what a user writing plain temporalio gets.

Measured (the last line printed is one JSON object with every figure):

* throughput (``facade_per_s``, ``raw_per_s``, ``raw_default_per_s``, ``ratio``,
  ``ratio_vs_raw_default``): N 3-step runs, at most ``--concurrency`` in flight, from the
  first start to the last completion, kinds alternating over ``--rounds`` rounds; medians.
  ``ratio`` (and ``loaded_p50_ratio``, ``cpu_ratio``, ``ratio_vs_raw_default``) is the median
  of the ratios within a round (``ratio_rounds``), whose batches ran back to back;
  ``ratio_of_medians`` divides the medians of the whole bench instead, which a machine whose
  speed changes between rounds pulls either way.
  The dev server gets slower as the runs it keeps accumulate (its CPU per run grows by half
  over a bench), so the order reverses every round (A B C, C B A, ...) and the rounds are even
  in number (default 6): then each kind's median comes from the same point of the bench on
  average. With three rounds the first kind's median would come from later batches than the
  second's.
  With the CPU each run costs in this process and in the dev server (from ``/proc``, on
  Linux) and ``cpu_ratio`` (raw CPU per run / facade CPU per run), the throughput ratio to
  expect when the CPUs are the limit, which other load on the machine disturbs less than
  runs/s.
* step-to-step latency: inside the steps, the end of one step's user code to the start of the
  next one's. ``facade_p50_ms``/``raw_p50_ms`` under load (the throughput batches;
  ``loaded_p50_ratio``: facade / raw, each round's p50s, the median over the rounds) and
  ``*_idle_p50_ms`` one run at a time (``--probe``).
* ``sleep_wake_error_p50_ms`` (+ ``raw_``): a step returns ``sleep(2 s)``; the start of the
  next step's code minus (the end of the sleeping step's code + 2 s). ``--sleep-runs`` runs of
  each kind at once.
* ``signal_to_step_p50_ms`` (+ ``raw_``): a run suspended on a signal; ``engine.signal(...,
  run_id=)`` (raw: ``handle.signal``) to the start of the next step's code, one run at a time.
* ``start_per_s`` (+ ``raw_``, ``start_ratio``): ``engine.start`` vs ``client.start_workflow``
  from ``--concurrency`` threads, of ``--broadcast`` runs whose start step waits for a signal.
* ``broadcast_1000_s`` (+ ``raw_``): those runs suspended, one ``engine.signal`` (raw: one
  signal per run, at most 100 in flight, as the library sends them) to the start of every
  run's next step; ``broadcast_1000_call_s``: until the call returned. Each kind twice, in
  the order facade, raw, raw, facade; the means (``*_passes``: each pass).
* ``worker_rss_mb_10k_suspended``: a separate worker process (``manage.py temporal_worker``,
  with this bench's settings) with ``--suspended`` runs suspended on a signal, its resident
  memory; then one ``engine.signal`` to all of them: ``broadcast_10k_reached`` (how many it
  reached), ``broadcast_10k_call_s``, and ``broadcast_10k_advanced``: the runs whose next step
  has run within ``--suspended-wait`` seconds (``broadcast_10k_s`` if that was all of them).
* the projection: every facade run is completed with the expected context and history rows;
  anything else fails the script (exit status 1).

``BENCH_QUICK=1`` (or ``--quick``) runs every part with small numbers, for development.

This module's top level imports only the standard library and ``temporalio``: the workflow
sandbox re-imports it for every ``raw_default`` run. Django is set up inside ``main()``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

FACADE_WORKFLOW = "bench_three_steps"
SLEEP_WORKFLOW = "bench_sleep"
WAIT_WORKFLOW = "bench_wait"
GATED_WORKFLOW = "bench_gated"
FACADE_QUEUE = "bench-facade"
RAW_QUEUE = "bench-raw"
RAW_DEFAULT_QUEUE = "bench-raw-default"
SUSPENDED_QUEUE = "bench-suspended"
KINDS = ("facade", "raw", "raw_default")
STEP_TIMEOUT = timedelta(hours=1)  # the library's STEP_TIMEOUT default
HEARTBEAT_TIMEOUT = timedelta(seconds=10)  # the library's HEARTBEAT_TIMEOUT default
SLEEP_SECONDS = 2.0
SIGNAL_CONCURRENCY = 100  # signals in flight at once, as engine.signal sends them

# Side channel written by the steps of every implementation: (run key, step index) -> (start,
# end) of the step's user code, in time.perf_counter() seconds (one process, one clock).
TIMES: dict[tuple[str, int], tuple[float, float]] = {}


def record_step(key: str, index: int, started: float) -> None:
    TIMES[(key, index)] = (started, time.perf_counter())


# ---------------------------------------------------------------------- raw temporalio
def _raw_step(state: dict[str, Any], index: int) -> dict[str, Any]:
    started = time.perf_counter()
    state = dict(state)
    state["count"] = state.get("count", 0) + 1  # the "user work", as in the facade's steps
    record_step(state["key"], index, started)
    return state


@activity.defn(name="raw.step_a")
def raw_step_a(state: dict[str, Any]) -> dict[str, Any]:
    return _raw_step(state, 0)


@activity.defn(name="raw.step_b")
def raw_step_b(state: dict[str, Any]) -> dict[str, Any]:
    return _raw_step(state, 1)


@activity.defn(name="raw.step_c")
def raw_step_c(state: dict[str, Any]) -> dict[str, Any]:
    return _raw_step(state, 2)


def _step(name: str, state: dict[str, Any]) -> Any:
    return workflow.execute_activity(
        name, state, start_to_close_timeout=STEP_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT
    )


@workflow.defn(name="raw_three_steps")
class RawThreeSteps:
    @workflow.run
    async def run(self, state: dict[str, Any]) -> dict[str, Any]:
        for name in ("raw.step_a", "raw.step_b", "raw.step_c"):
            state = await _step(name, state)
        return state


@workflow.defn(name="raw_sleep")
class RawSleep:
    @workflow.run
    async def run(self, state: dict[str, Any]) -> dict[str, Any]:
        state = await _step("raw.step_a", state)
        await workflow.sleep(SLEEP_SECONDS)
        return await _step("raw.step_b", state)


@workflow.defn(name="raw_wait")
class RawWait:
    """Step a, wait for the signal ``go``, step b (the facade: a step returning ``wait("go")``)."""

    def __init__(self) -> None:
        self.signalled = False

    @workflow.run
    async def run(self, state: dict[str, Any]) -> dict[str, Any]:
        state = await _step("raw.step_a", state)
        await workflow.wait_condition(lambda: self.signalled)
        return await _step("raw.step_b", state)

    @workflow.signal(name="go")
    def go(self) -> None:
        self.signalled = True


@workflow.defn(name="raw_gated")
class RawGated:
    """Wait for the signal ``open``, then step b (the facade: a start step gated by ``wait("open")``)."""

    def __init__(self) -> None:
        self.signalled = False

    @workflow.run
    async def run(self, state: dict[str, Any]) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.signalled)
        return await _step("raw.step_b", state)

    @workflow.signal(name="open")
    def open(self) -> None:
        self.signalled = True


RAW_WORKFLOWS = [RawThreeSteps, RawSleep, RawWait, RawGated]
RAW_NAMES = {FACADE_WORKFLOW: "raw_three_steps", SLEEP_WORKFLOW: "raw_sleep", WAIT_WORKFLOW: "raw_wait"}
RAW_NAMES[GATED_WORKFLOW] = "raw_gated"


# ---------------------------------------------------------------------- the library
def define_facade_workflows() -> None:
    """The same workflows through the library (registered on import of ``facade``)."""
    from pydantic import BaseModel

    from facade import complete, get_context, goto, sleep, step, wait, workflow

    def user_work(index: int) -> None:
        started = time.perf_counter()
        ctx = get_context()
        ctx.count += 1
        record_step(ctx.key, index, started)

    class BenchContext(BaseModel):
        key: str
        count: int = 0

    @workflow(FACADE_WORKFLOW)
    class BenchThreeSteps:
        Context = BenchContext

        @step(start=True)
        def step_a(self):
            user_work(0)
            return goto(self.step_b)

        @step()
        def step_b(self):
            user_work(1)
            return goto(self.step_c)

        @step()
        def step_c(self):
            user_work(2)
            return complete()

    @workflow(SLEEP_WORKFLOW)
    class BenchSleep:
        Context = BenchContext

        @step(start=True)
        def nap(self):
            if get_context().count == 0:
                user_work(0)
                return sleep(timedelta(seconds=SLEEP_SECONDS))
            user_work(1)
            return complete()

    @workflow(WAIT_WORKFLOW)
    class BenchWait:
        Context = BenchContext

        @step(start=True)
        def first(self):
            user_work(0)
            return wait("go")

        @step()
        def second(self):
            user_work(1)
            return complete()

    @workflow(GATED_WORKFLOW)
    class BenchGated:
        Context = BenchContext

        @step(start=True)
        @wait("open")
        def opened(self):
            user_work(1)
            return complete()


# ---------------------------------------------------------------------- helpers
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def step_gaps_ms(keys: list[str], steps: int = 3) -> list[float]:
    """End of step i to start of step i+1, per run, in ms (consumes the side channel)."""
    gaps = []
    for key in keys:
        marks = [TIMES.pop((key, i)) for i in range(steps)]
        gaps += [(marks[i + 1][0] - marks[i][1]) * 1000 for i in range(steps - 1)]
    return gaps


def child_pids() -> list[str]:
    """Child processes of this process (the dev server), on Linux; else none."""
    pids: set[str] = set()
    for path in glob.glob("/proc/self/task/*/children"):
        with contextlib.suppress(OSError), open(path) as f:
            pids.update(f.read().split())
    return sorted(pids)


def cpu_seconds(pids: list[str]) -> float:
    """User+system CPU seconds used so far by ``pids`` (from /proc; 0 where unreadable)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_idle(pids: list[str], timeout: float = 300.0, busy: float = 0.05) -> None:
    """Until ``pids`` (and this process) use under ``busy`` of a CPU for two windows of 0.5 s:
    the workflows started are all blocked, nothing is left to process."""
    pids = [*pids, str(os.getpid())]
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        before = cpu_seconds(pids)
        time.sleep(0.5)
        quiet = quiet + 1 if cpu_seconds(pids) - before < busy * 0.5 else 0
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers were still busy after {timeout:.0f}s")


def workflow_runner(mode: str, kind: str, library_runner: Any = None) -> dict[str, Any]:
    """The ``workflow_runner`` argument of the worker of ``kind`` for ``--sandbox`` mode
    (``library_runner``: the runner of the library's worker as it ships)."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    if kind == "raw_default":
        return {}  # temporalio's defaults, whatever the mode
    if mode == "library":  # the library's worker as it ships; raw runs its workflows the same way
        if kind == "facade":
            return {}
        unsandboxed = isinstance(library_runner, UnsandboxedWorkflowRunner)
        return {"workflow_runner": UnsandboxedWorkflowRunner() if unsandboxed else SandboxedWorkflowRunner()}
    if mode == "sandbox":
        return {"workflow_runner": SandboxedWorkflowRunner()}
    if mode == "unsandboxed":
        return {"workflow_runner": UnsandboxedWorkflowRunner()}
    # passthrough: the sandbox, each workflow's own modules imported once instead of per run
    own = ("temporal_worker",) if kind == "facade" else (RawThreeSteps.__module__,)
    return {
        "workflow_runner": SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*own)
        )
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env: Any = None
        self.client: Any = None
        self.workers: list[Any] = []
        self.worker_tasks: list[Any] = []
        self.facade_runs: dict[str, list[int]] = {}  # workflow -> run ids started in this process
        self.server_pids: list[str] = []
        self.queues = {"facade": FACADE_QUEUE, "raw": RAW_QUEUE, "raw_default": RAW_DEFAULT_QUEUE}

    # ------------------------------------------------------------------ setup / teardown
    def start(self) -> None:
        from temporalio.worker import Worker

        from facade.testing import TemporalTestEnvironment
        from temporal_worker import client as bridge
        from temporal_worker.worker import build_worker

        threads = self.args.threads
        self.env = TemporalTestEnvironment(
            task_queue=FACADE_QUEUE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT.total_seconds(),
            max_concurrent_steps=threads,
            start_worker=False,
        )
        self.env.start()
        self.client = self.env.client
        self.server_pids = child_pids()

        async def launch() -> None:
            import asyncio
            import concurrent.futures

            facade = build_worker(
                self.client, FACADE_QUEUE, max_concurrent_steps=threads, **workflow_runner(self.args.sandbox, "facade")
            )
            library_runner = facade.config()["workflow_runner"]
            facade_sticky = facade.config()["sticky_queue_schedule_to_start_timeout"]

            def raw_worker(kind: str) -> Worker:
                # Like for like, raw's workflow tasks wait on its worker's own queue as long as
                # the library's do (raw_default: temporalio's 10 s).
                sticky = {} if kind == "raw_default" else {"sticky_queue_schedule_to_start_timeout": facade_sticky}
                return Worker(
                    self.client,
                    task_queue=self.queues[kind],
                    workflows=RAW_WORKFLOWS,
                    activities=[raw_step_a, raw_step_b, raw_step_c],
                    activity_executor=concurrent.futures.ThreadPoolExecutor(
                        max_workers=threads, thread_name_prefix=f"{kind}-step"
                    ),
                    max_concurrent_activities=threads,
                    **workflow_runner(self.args.sandbox, kind, library_runner),
                    **sticky,
                )

            loop = asyncio.get_running_loop()
            self.workers = [facade, raw_worker("raw"), raw_worker("raw_default")]
            self.worker_tasks = [loop.create_task(w.run()) for w in self.workers]

        bridge.run_sync(launch(), timeout=60)

    def stop(self) -> None:
        from temporal_worker import client as bridge

        async def shutdown() -> None:
            import asyncio

            await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)
            await asyncio.gather(*self.worker_tasks, return_exceptions=True)

        if self.workers:
            bridge.run_sync(shutdown(), timeout=60)
        if self.env is not None:
            self.env.stop()

    # ------------------------------------------------------------------ starting and awaiting runs
    def start_run(self, kind: str, workflow_name: str, key: str) -> Any:
        """Start one run; returns its handle (facade: of ``run.temporal_workflow_id``), with the
        run's id as ``handle.bench_run_id`` for the facade."""
        from facade import engine
        from temporal_worker import client as bridge

        if kind == "facade":
            run = engine.start(workflow_name, key=key)
            self.facade_runs.setdefault(workflow_name, []).append(run.pk)
            # With the run id engine.start returned, as raw's handle has it (without, every
            # result call makes the server look up the current run).
            handle = self.client.get_workflow_handle(run.temporal_workflow_id, run_id=run.temporal_run_id or None)
            handle.bench_run_id = run.pk
            return handle
        return bridge.run_sync(
            self.client.start_workflow(
                RAW_NAMES[workflow_name], {"key": key, "count": 0}, id=f"{kind}-{key}", task_queue=self.queues[kind]
            ),
            timeout=30,
        )

    def result(self, kind: str, handle: Any) -> dict[str, Any]:
        from temporal_worker import client as bridge

        result = bridge.run_sync(handle.result(), timeout=self.args.timeout)
        return result["context"] if kind == "facade" else result

    def in_threads(self, fn: Callable[[str], Any], keys: list[str], concurrency: int) -> tuple[list[Any], float]:
        """``fn(key)`` for every key, from ``concurrency`` threads; the results (in key order) and the seconds."""
        from django.db import connection

        todo: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        for item in enumerate(keys):
            todo.put(item)
        results: list[Any] = [None] * len(keys)
        errors: list[BaseException] = []

        def drive() -> None:
            try:
                while not errors:
                    try:
                        i, key = todo.get_nowait()
                    except queue.Empty:
                        return
                    results[i] = fn(key)
            except BaseException as exc:  # reported after the batch
                errors.append(exc)
            finally:
                connection.close()  # this thread's Django connection

        threads = [threading.Thread(target=drive, name=f"drive-{i}") for i in range(min(concurrency, len(keys)))]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"{len(errors)} run(s) failed; first: {errors[0]!r}") from errors[0]
        return results, elapsed

    # ------------------------------------------------------------------ throughput batches
    def batch(self, kind: str, n: int, concurrency: int | None = None) -> dict[str, Any]:
        """Run ``n`` 3-step runs of ``kind`` with at most ``concurrency`` in flight; time them."""
        tag = uuid.uuid4().hex[:8]
        keys = [f"{kind}-{tag}-{i}" for i in range(n)]

        def one(key: str) -> tuple[dict[str, Any], float]:
            t0 = time.perf_counter()
            context = self.result(kind, self.start_run(kind, FACADE_WORKFLOW, key))
            return context, time.perf_counter() - t0

        server = self.server_pids
        cpu_before = time.process_time(), cpu_seconds(server)
        results, elapsed = self.in_threads(one, keys, concurrency or self.args.concurrency)
        cpu_python, cpu_server = time.process_time() - cpu_before[0], cpu_seconds(server) - cpu_before[1]
        bad = [(key, ctx) for key, (ctx, _) in zip(keys, results, strict=True) if ctx.get("count") != 3]
        if bad:
            raise RuntimeError(f"{kind} batch: wrong contexts: {bad[:3]}")
        return {
            "per_s": n / elapsed,
            "elapsed": elapsed,
            "gaps_ms": step_gaps_ms(keys),
            "run_ms": [took * 1000 for _, took in results],
            "cpu_python_ms": cpu_python * 1000 / n,
            "cpu_server_ms": cpu_server * 1000 / n,
            "cpu_busy": (cpu_python + cpu_server) / elapsed / (os.cpu_count() or 1),
        }

    # ------------------------------------------------------------------ sleep, signal, broadcast
    def sleep_wake_errors_ms(self, kind: str, n: int) -> list[float]:
        """``n`` runs at once whose first step sleeps 2 s: wake (next step's code) - due, in ms."""
        keys = [f"sleep-{kind}-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
        self.in_threads(lambda key: self.result(kind, self.start_run(kind, SLEEP_WORKFLOW, key)), keys, n)
        errors = []
        for key in keys:
            (_, slept_at), (woke, _) = TIMES.pop((key, 0)), TIMES.pop((key, 1))
            errors.append((woke - slept_at - SLEEP_SECONDS) * 1000)
        return errors

    def signal_to_step_ms(self, kind: str) -> float:
        """One run suspended on ``go``: the signal call's start to the next step's code, in ms."""
        from django_bridge.models import WorkflowRun
        from facade import WorkflowStatus, engine
        from temporal_worker import client as bridge

        key = f"signal-{kind}-{uuid.uuid4().hex[:8]}"
        handle = self.start_run(kind, WAIT_WORKFLOW, key)
        wait_for(lambda: (key, 0) in TIMES, 30, f"{kind} run {key} to run its first step")
        if kind == "facade":
            run_id = handle.bench_run_id
            wait_for(
                lambda: WorkflowRun.objects.filter(pk=run_id, status=WorkflowStatus.SUSPENDED).exists(),
                30,
                f"run {run_id} to be suspended",
            )
        time.sleep(0.2)  # both: the workflow has applied the step's result and blocked
        t0 = time.perf_counter()
        if kind == "facade":
            reached = engine.signal("go", run_id=handle.bench_run_id)
            if reached != 1:
                raise RuntimeError(f"engine.signal('go', run_id={handle.bench_run_id}) reached {reached} runs, not 1")
        else:
            bridge.run_sync(handle.signal("go"), timeout=30)
        wait_for(lambda: (key, 1) in TIMES, 30, f"{kind} run {key} to run its next step")
        latency = (TIMES[(key, 1)][0] - t0) * 1000
        context = self.result(kind, handle)
        if context.get("count") != 2:
            raise RuntimeError(f"{kind} run {key} ended with {context}")
        TIMES.pop((key, 0))
        TIMES.pop((key, 1))
        return latency

    def broadcast(self, kind: str, n: int) -> dict[str, float]:
        """Start ``n`` runs that wait for ``open`` (timed: starts per second), let them block,
        then signal them all (the library: one engine.signal) until every next step started."""
        from facade import engine
        from temporal_worker import client as bridge

        keys = [f"open-{kind}-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
        handles, start_s = self.in_threads(
            lambda key: self.start_run(kind, GATED_WORKFLOW, key), keys, self.args.concurrency
        )
        wait_idle(self.server_pids)
        t0 = time.perf_counter()
        if kind == "facade":
            reached = engine.signal("open")
        else:

            async def send_all() -> int:
                def send(handle: Any) -> Callable[[], Any]:
                    return lambda: handle.signal("open")

                outcomes = await bridge.bounded_gather([send(h) for h in handles], SIGNAL_CONCURRENCY)
                failed = [o for o in outcomes if isinstance(o, BaseException)]
                if failed:
                    raise failed[0]
                return len(outcomes)

            reached = bridge.run_sync(send_all(), timeout=600)
        call_s = time.perf_counter() - t0
        if reached != n:
            raise RuntimeError(f"{kind}: the broadcast reached {reached} of {n} runs")
        wait_for(lambda: all((key, 1) in TIMES for key in keys), 900, f"{n} {kind} runs to run their next step", 0.1)
        all_s = max(TIMES[(key, 1)][0] for key in keys) - t0
        for key in keys:
            TIMES.pop((key, 1))
        for handle in handles:  # every run ends
            bridge.run_sync(handle.result(), timeout=self.args.timeout)
        return {"start_per_s": n / start_s, "call_s": call_s, "all_s": all_s}

    # ------------------------------------------------------------------ runs suspended in a worker process
    def suspended(self, n: int, tmp: str) -> dict[str, Any]:
        """``n`` runs suspended on ``open`` in a worker process of their own: its memory, and one
        engine.signal reaching all of them."""
        from django.db.models import Count

        from django_bridge.conf import automation_settings
        from django_bridge.models import WorkflowRun
        from facade import WorkflowStatus, engine

        env = dict(os.environ)
        env.update(
            TEMPORAL_ADDRESS=self.client.service_client.config.target_host,
            TEMPORAL_NAMESPACE=self.client.namespace,
            TEMPORAL_TASK_QUEUE=SUSPENDED_QUEUE,
        )
        log = open(os.path.join(tmp, "worker.log"), "w")  # noqa: SIM115  (closed below)
        worker = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        out: dict[str, Any] = {}
        saved_queue = automation_settings.overrides.get("TASK_QUEUE")
        try:
            pids = [*self.server_pids, str(worker.pid)]
            wait_for(lambda: "worker on" in read(log.name), 60, "the worker process to start", 0.1)
            wait_idle(pids)
            out["worker_rss_mb_idle"] = round(rss_mb(worker.pid), 1)
            automation_settings.overrides["TASK_QUEUE"] = SUSPENDED_QUEUE
            keys = [f"suspended-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
            _, start_s = self.in_threads(
                lambda key: engine.start(GATED_WORKFLOW, key=key).pk, keys, self.args.concurrency
            )
            out["suspended_start_per_s"] = round(n / start_s, 1)
            print(f"suspended: {n} runs started in {start_s:.1f}s ({n / start_s:.0f}/s)", flush=True)
            wait_idle(pids, timeout=900)
            out["worker_rss_mb_10k_suspended"] = round(rss_mb(worker.pid), 1)
            runs = WorkflowRun.objects.filter(task_queue=SUSPENDED_QUEUE)
            t0 = time.perf_counter()
            out["broadcast_10k_reached"] = engine.signal("open")
            out["broadcast_10k_call_s"] = round(time.perf_counter() - t0, 2)
            print(
                f"suspended: worker RSS {out['worker_rss_mb_idle']} MB idle, {out['worker_rss_mb_10k_suspended']} MB "
                f"with {n} runs suspended; engine.signal reached {out['broadcast_10k_reached']} in "
                f"{out['broadcast_10k_call_s']}s",
                flush=True,
            )
            deadline = time.monotonic() + self.args.suspended_wait
            advanced = 0
            while time.monotonic() < deadline:
                advanced = runs.filter(status=WorkflowStatus.COMPLETED).count()
                if advanced == n:
                    out["broadcast_10k_s"] = round(time.perf_counter() - t0, 1)
                    break
                time.sleep(1)
            out["broadcast_10k_advanced"] = advanced
            print(
                f"suspended: {advanced} of {n} runs ran their next step within {self.args.suspended_wait:.0f}s "
                f"({dict(runs.values_list('status').annotate(c=Count('id')))})",
                flush=True,
            )
        finally:
            automation_settings.overrides["TASK_QUEUE"] = saved_queue
            worker.terminate()
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
        return out

    # ------------------------------------------------------------------ the projection
    def check_projection(self) -> list[str]:
        from django.db.models import Count

        from django_bridge.models import StepExecution, WorkflowRun
        from facade import StepStatus, WorkflowStatus

        problems = []
        # workflow -> (count in the final context, completed history rows per run)
        # (a step that returns sleep() or wait() writes no history row: it is entered again / suspends)
        expected_shape = {
            FACADE_WORKFLOW: (3, 3),
            SLEEP_WORKFLOW: (2, 1),
            WAIT_WORKFLOW: (2, 1),
            GATED_WORKFLOW: (1, 1),
        }
        for name, ids in self.facade_runs.items():
            count, rows = expected_shape[name]
            runs = WorkflowRun.objects.filter(pk__in=ids)
            by_status = dict(runs.values_list("status").annotate(n=Count("id")))
            completed = runs.filter(status=WorkflowStatus.COMPLETED, data__count=count, progress=1.0).count()
            steps = StepExecution.objects.filter(run__in=ids, status=StepStatus.COMPLETED)
            per_run = set(steps.values("run_id").annotate(n=Count("id")).values_list("n", flat=True))
            if completed != len(ids):
                problems.append(
                    f"{name}: {len(ids)} runs expected completed with count={count}; found {completed} (rows by status {by_status})"
                )
            if steps.count() != rows * len(ids) or per_run - {rows}:
                problems.append(
                    f"{name}: {rows} completed step rows expected per run; found {steps.count()} for {len(ids)} runs, per-run counts {sorted(per_run)}"
                )
            print(f"projection: {name}: {completed}/{len(ids)} runs completed, {steps.count()} completed step rows")
        return problems


def per_s(batch: dict[str, Any]) -> float:
    return float(batch["per_s"])


def gap_p50(batch: dict[str, Any]) -> float:
    return percentile(batch["gaps_ms"], 50)


def cpu_per_run(batch: dict[str, Any]) -> float:
    return float(batch["cpu_python_ms"] + batch["cpu_server_ms"])


def round_ratios(
    results: dict[str, list[dict[str, Any]]], figure: Callable[[dict[str, Any]], float], top: str, bottom: str
) -> list[float]:
    """``figure`` of ``top``'s batch / ``figure`` of ``bottom``'s, round by round.

    The batches of one round run back to back, so each ratio compares the two kinds at the
    same point of the bench and under the same load from the rest of the machine; the ratios
    the bench reports are the median of these. The machine's speed moves between rounds (on
    a shared machine the same batch's CPU per run varied by half within one bench), and a
    ratio of medians taken over the whole bench can pair one kind's fast rounds with the
    other's slow ones."""
    return [figure(a) / figure(b) for a, b in zip(results[top], results[bottom], strict=True)]


def summarise(kind: str, rounds: list[dict[str, Any]]) -> dict[str, float]:
    gaps = [g for r in rounds for g in r["gaps_ms"]]
    runs = [t for r in rounds for t in r["run_ms"]]
    out = {
        "per_s": statistics.median(per_s(r) for r in rounds),
        "p50_ms": percentile(gaps, 50),
        "p95_ms": percentile(gaps, 95),
        "run_p50_ms": percentile(runs, 50),
        "run_p95_ms": percentile(runs, 95),
        "cpu_ms": statistics.median(cpu_per_run(r) for r in rounds),
        "cpu_python_ms": statistics.median(r["cpu_python_ms"] for r in rounds),
    }
    per_round = ", ".join(f"{r['per_s']:.1f}" for r in rounds)
    print(
        f"{kind:>11}: {out['per_s']:7.1f} runs/s (median of {per_round}); "
        f"step-to-step p50 {out['p50_ms']:.2f} ms, p95 {out['p95_ms']:.2f} ms; "
        f"run start-to-result p50 {out['run_p50_ms']:.1f} ms, p95 {out['run_p95_ms']:.1f} ms; "
        f"CPU per run {out['cpu_ms']:.1f} ms (this process {out['cpu_python_ms']:.1f} ms)"
    )
    return out


QUICK = {
    "n": 60,
    "rounds": 2,
    "warmup": 5,
    "probe": 3,
    "sleep_runs": 5,
    "signal_runs": 5,
    "broadcast": 100,
    "suspended": 1000,
    "suspended_wait": 30.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small numbers everywhere (also BENCH_QUICK=1)")
    parser.add_argument("--n", type=int, default=200, help="runs per throughput batch (default 200)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="throughput batch rounds, kinds alternating (default 6; keep it even, see above)",
    )
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight / starting threads (default 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=16,
        help="activity threads of each worker (default 16, the library's MAX_CONCURRENT_STEPS)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured runs of each kind first (default 10)")
    parser.add_argument(
        "--probe",
        type=int,
        default=10,
        help="runs of each kind one at a time, for the idle latency (default 10; 0 skips)",
    )
    parser.add_argument(
        "--sleep-runs", type=int, default=20, help="runs of each kind sleeping 2 s at once (default 20; 0 skips)"
    )
    parser.add_argument(
        "--signal-runs", type=int, default=20, help="signalled runs of each kind, one at a time (default 20; 0 skips)"
    )
    parser.add_argument(
        "--broadcast", type=int, default=1000, help="runs of each kind in the broadcast (default 1000; 0 skips)"
    )
    parser.add_argument(
        "--suspended", type=int, default=10000, help="runs suspended in the worker process (default 10000; 0 skips)"
    )
    parser.add_argument(
        "--suspended-wait",
        type=float,
        default=60.0,
        help="seconds to watch the suspended runs run their next step after the signal (default 60; on two "
        "cores all 10,000 take about 5 minutes)",
    )
    parser.add_argument(
        "--sandbox",
        choices=("library", "sandbox", "passthrough", "unsandboxed"),
        default="library",
        help="how the facade and raw workers run workflows: library (as the library's worker ships; the default), "
        "sandbox (temporalio's default sandbox), passthrough (the sandbox, each workflow's own modules imported "
        "once), unsandboxed; raw_default always runs at temporalio's defaults",
    )
    parser.add_argument(
        "--search-attributes",
        choices=("on", "off"),
        default="off",
        help="whether facade runs publish their search attributes (default off, the library's default; on: "
        'AUTOMATION["SEARCH_ATTRIBUTES"] = True, to see what they cost)',
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one run may take (default 120)")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)  # the worker process
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("BENCH_QUICK") == "1":
        args.quick = True
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    counts = (args.warmup, args.probe, args.sleep_runs, args.signal_runs, args.broadcast, args.suspended)
    if args.n < 1 or args.rounds < 1 or args.concurrency < 1 or args.threads < 1 or min(counts) < 0:
        parser.error("--n, --rounds, --concurrency and --threads must be at least 1, the other counts at least 0")
    return args


def prepare(db_path: str | None = None) -> tempfile.TemporaryDirectory[str] | None:
    """Django on a fresh SQLite file in a temporary directory (or on ``db_path``), the bench's
    workflows declared; the temporary directory, if one was made."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (here, os.path.dirname(here)):  # bench_settings, and the project's packages
        if path not in sys.path:
            sys.path.insert(0, path)
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="automation-bench-")
        os.environ["BENCH_DB"] = os.path.join(tmp.name, "bench.sqlite3")
        for var in (
            "TEMPORAL_ADDRESS",
            "TEMPORAL_NAMESPACE",
            "TEMPORAL_TASK_QUEUE",
            "TEMPORAL_API_KEY",
            "TEMPORAL_TLS",
        ):
            os.environ.pop(var, None)  # the bench always uses its own dev server
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"

    import django
    from django.core.management import call_command

    django.setup()
    if tmp is not None:
        call_command("migrate", verbosity=0)
    define_facade_workflows()
    # The workflow sandbox re-imports the module of each sandboxed workflow for every new run
    # (this file, for raw_default). Without a bytecode cache (PYTHONDONTWRITEBYTECODE) that is
    # a compile per run, which a deployed worker does not pay: cache bytecode compiled from
    # now on in the temporary directory.
    if tmp is not None:
        sys.dont_write_bytecode = False
        sys.pycache_prefix = os.path.join(tmp.name, "pycache")
    return tmp


def serve_worker() -> int:
    """The worker process of the suspended-runs part: ``manage.py temporal_worker`` on this
    bench's database and workflows (address and queue from the environment)."""
    from django.core.management import call_command

    prepare(os.environ["BENCH_DB"])
    call_command("temporal_worker")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_worker:
        return serve_worker()
    os.environ["BENCH_SEARCH_ATTRIBUTES"] = args.search_attributes  # read by bench_settings, here and in the worker
    tmp = prepare()
    assert tmp is not None
    began = time.perf_counter()
    print(
        f"bench: N={args.n} runs per batch, {args.rounds} rounds ({', '.join(KINDS)} alternating), "
        f"{args.concurrency} in flight, {args.threads} activity threads per worker, {os.cpu_count()} CPUs, "
        f"sandbox mode {args.sandbox}, search attributes {args.search_attributes}{', quick' if args.quick else ''}; a run is done when its Temporal workflow "
        "returns (facade: handle of run.temporal_workflow_id), the projection is checked at the end",
        flush=True,
    )
    bench = Bench(args)
    code = 0
    summary: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        bench.start()
        print(f"dev server and workers up in {time.perf_counter() - t0:.1f}s", flush=True)
        if args.warmup:
            for kind in KINDS:
                bench.batch(kind, args.warmup)
            print(f"warm-up: {args.warmup} runs of each", flush=True)
        idle: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(args.probe):  # one run at a time, alternating: latency without queueing
            for kind in KINDS:
                idle[kind] += bench.batch(kind, 1, concurrency=1)["gaps_ms"]
        if args.probe:
            for kind in KINDS:
                print(
                    f"idle step-to-step ({args.probe} runs one at a time) {kind:>11}: "
                    f"p50 {percentile(idle[kind], 50):.2f} ms, p95 {percentile(idle[kind], 95):.2f} ms",
                    flush=True,
                )
        results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for i in range(args.rounds):
            for kind in KINDS if i % 2 == 0 else tuple(reversed(KINDS)):
                r = bench.batch(kind, args.n)
                results[kind].append(r)
                print(
                    f"round {i + 1} {kind:>11}: {args.n} runs in {r['elapsed']:.2f}s = {r['per_s']:.1f} runs/s; CPU per run: "
                    f"worker process {r['cpu_python_ms']:.1f} ms, "
                    + (
                        f"dev server {r['cpu_server_ms']:.1f} ms ({r['cpu_busy']:.0%} of all CPUs busy with both)"
                        if bench.server_pids
                        else "dev server n/a (no /proc)"
                    ),
                    flush=True,
                )
        facade, raw, raw_default = (summarise(kind, results[kind]) for kind in KINDS)
        ratios = round_ratios(results, per_s, "facade", "raw")
        p50_ratios = round_ratios(results, gap_p50, "facade", "raw")
        cpu = bool(bench.server_pids and facade["cpu_ms"])
        summary = {
            "facade_per_s": round(facade["per_s"], 2),
            "raw_per_s": round(raw["per_s"], 2),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_rounds": [round(r, 3) for r in ratios],
            "ratio_of_medians": round(facade["per_s"] / raw["per_s"], 3),
            "facade_p50_ms": round(facade["p50_ms"], 3),
            "raw_p50_ms": round(raw["p50_ms"], 3),
            "facade_p95_ms": round(facade["p95_ms"], 3),
            "raw_p95_ms": round(raw["p95_ms"], 3),
            "loaded_p50_ratio": round(statistics.median(p50_ratios), 3),
            "loaded_p50_ratio_rounds": [round(r, 3) for r in p50_ratios],
            "facade_run_p50_ms": round(facade["run_p50_ms"], 2),
            "raw_run_p50_ms": round(raw["run_p50_ms"], 2),
            "raw_default_per_s": round(raw_default["per_s"], 2),
            "ratio_vs_raw_default": round(statistics.median(round_ratios(results, per_s, "facade", "raw_default")), 3),
            "raw_default_p50_ms": round(raw_default["p50_ms"], 3),
        }
        print(
            "facade / raw, round by round (the two batches of a round ran back to back): runs/s "
            + ", ".join(f"{r:.3f}" for r in ratios)
            + "; step-to-step p50 "
            + ", ".join(f"{r:.3f}" for r in p50_ratios)
            + f"; medians {summary['ratio']:.3f} and {summary['loaded_p50_ratio']:.3f}",
            flush=True,
        )
        if args.probe:
            summary["facade_idle_p50_ms"] = round(percentile(idle["facade"], 50), 3)
            summary["raw_idle_p50_ms"] = round(percentile(idle["raw"], 50), 3)
        if cpu:
            summary.update(
                facade_cpu_ms=round(facade["cpu_ms"], 1),
                raw_cpu_ms=round(raw["cpu_ms"], 1),
                raw_default_cpu_ms=round(raw_default["cpu_ms"], 1),
                cpu_ratio=round(statistics.median(round_ratios(results, cpu_per_run, "raw", "facade")), 3),
                cpu_ratio_vs_raw_default=round(
                    statistics.median(round_ratios(results, cpu_per_run, "raw_default", "facade")), 3
                ),
            )
            print(
                f"CPU per run (worker process + dev server, median): facade {facade['cpu_ms']:.1f} ms, raw "
                f"{raw['cpu_ms']:.1f} ms, raw_default {raw_default['cpu_ms']:.1f} ms; raw/facade (median over "
                f"the rounds) = {summary['cpu_ratio']:.2f}, the throughput ratio to expect when the CPUs are the limit "
                "(less sensitive than runs/s to other load on the machine)",
                flush=True,
            )

        if args.sleep_runs:
            for kind in ("facade", "raw"):
                errors = bench.sleep_wake_errors_ms(kind, args.sleep_runs)
                prefix = "" if kind == "facade" else "raw_"
                summary[f"{prefix}sleep_wake_error_p50_ms"] = round(percentile(errors, 50), 2)
                print(
                    f"sleep(2 s) wake error ({args.sleep_runs} runs at once) {kind:>6}: "
                    f"p50 {percentile(errors, 50):.1f} ms, max {max(errors):.1f} ms",
                    flush=True,
                )
        if args.signal_runs:
            latencies: dict[str, list[float]] = {"facade": [], "raw": []}
            for _ in range(args.signal_runs):
                for kind in ("facade", "raw"):
                    latencies[kind].append(bench.signal_to_step_ms(kind))
            for kind in ("facade", "raw"):
                prefix = "" if kind == "facade" else "raw_"
                summary[f"{prefix}signal_to_step_p50_ms"] = round(percentile(latencies[kind], 50), 2)
                print(
                    f"signal to next step ({args.signal_runs} runs one at a time) {kind:>6}: "
                    f"p50 {percentile(latencies[kind], 50):.1f} ms, p95 {percentile(latencies[kind], 95):.1f} ms",
                    flush=True,
                )
        if args.broadcast:
            # Twice, the kinds in both orders (the dev server slows as runs accumulate); the means.
            passes: dict[str, list[dict[str, float]]] = {"facade": [], "raw": []}
            for order in (("facade", "raw"), ("raw", "facade")):
                for kind in order:
                    b = bench.broadcast(kind, args.broadcast)
                    passes[kind].append(b)
                    print(
                        f"broadcast {kind:>6}: {args.broadcast} runs started at {b['start_per_s']:.0f}/s; one signal "
                        f"call returned in {b['call_s']:.2f}s, every next step started after {b['all_s']:.2f}s",
                        flush=True,
                    )
            for kind in ("facade", "raw"):
                prefix = "" if kind == "facade" else "raw_"
                mean = {k: statistics.mean(b[k] for b in passes[kind]) for k in ("start_per_s", "call_s", "all_s")}
                summary[f"{prefix}start_per_s"] = round(mean["start_per_s"], 1)
                summary[f"{prefix}broadcast_1000_s"] = round(mean["all_s"], 2)
                summary[f"{prefix}broadcast_1000_call_s"] = round(mean["call_s"], 2)
                summary[f"{prefix}broadcast_1000_s_passes"] = [round(b["all_s"], 2) for b in passes[kind]]
            summary["start_ratio"] = round(summary["start_per_s"] / summary["raw_start_per_s"], 3)
            summary["broadcast_runs"] = args.broadcast
        problems = bench.check_projection()
        if args.suspended:
            summary.update(bench.suspended(args.suspended, tmp.name))
            summary["suspended_runs"] = args.suspended
            if summary.get("broadcast_10k_reached") != args.suspended:
                problems.append(
                    f"engine.signal reached {summary.get('broadcast_10k_reached')} of {args.suspended} suspended runs"
                )
        summary.update(
            n=args.n,
            rounds=args.rounds,
            concurrency=args.concurrency,
            sandbox=args.sandbox,
            search_attributes=args.search_attributes,
            quick=args.quick,
            projection_ok=not problems,
            bench_s=round(time.perf_counter() - began),
        )
        targets = [
            ("ratio", summary["ratio"] >= 0.9, ">= 0.9"),
            ("loaded_p50_ratio", summary["loaded_p50_ratio"] <= 1.1, "<= 1.1"),
        ]
        if "sleep_wake_error_p50_ms" in summary:
            diff = summary["sleep_wake_error_p50_ms"] - summary["raw_sleep_wake_error_p50_ms"]
            targets.append(("sleep wake error - raw", diff <= 10, "<= 10 ms"))
        if "signal_to_step_p50_ms" in summary:
            diff = summary["signal_to_step_p50_ms"] - summary["raw_signal_to_step_p50_ms"]
            targets.append(("signal to step - raw", diff <= 10, "<= 10 ms"))
        if "broadcast_1000_s" in summary:
            targets.append(
                ("broadcast / raw", summary["broadcast_1000_s"] <= 1.1 * summary["raw_broadcast_1000_s"], "<= 1.1")
            )
            targets.append(("start_ratio", summary["start_ratio"] >= 0.8, ">= 0.8"))
        if "worker_rss_mb_10k_suspended" in summary:
            targets.append(
                ("worker RSS with runs suspended", summary["worker_rss_mb_10k_suspended"] <= 300, "<= 300 MB")
            )
        print("targets: " + "; ".join(f"{name} {want}: {'met' if ok else 'NOT met'}" for name, ok, want in targets))
        for problem in problems:
            print(f"PROJECTION CHECK FAILED: {problem}", file=sys.stderr)
            code = 1
    except BaseException as exc:
        print(f"bench failed: {exc!r}", file=sys.stderr)
        code = 1
    finally:
        try:
            bench.stop()
        except Exception as exc:
            print(f"shutdown: {exc!r}", file=sys.stderr)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        tmp.cleanup()
    if summary:
        print(json.dumps(summary))
    return code


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core can crash at interpreter exit (sdk-python #300): leave without it.
    os._exit(status)
