"""``make bench``: this library against a hand-written ``temporalio`` workflow, same 3 steps.

The same 3-step workflow runs N times through the library (``engine.start``, the interpreter
workflow, the step activity and its projection writes) and N times as a plain ``temporalio``
workflow with 3 activities, on one Temporal dev server started from the virtualenv, with the
same process layout: one process hosts both workers on one event loop (the library's worker
and a raw ``Worker``, each with a thread pool of the same size for its synchronous
activities) and the threads that start the runs. Facade and raw batches alternate.

The library runs with its defaults (the dev server has its search attributes registered, so
runs upsert them; SQLite with ``django_bridge.sqlite.SQLITE_OPTIONS`` in a temporary directory).

Measured:

* throughput: N runs, at most ``--concurrency`` in flight, from the first start to the last
  completion (each driver thread starts a run and awaits its Temporal result, the same way
  for both; a facade run counts as done when its Temporal workflow returns, and the
  projection is checked afterwards). The median over ``--rounds`` rounds is reported, with
  the CPU each run costs in this process and in the dev server (from ``/proc``, on Linux) and
  ``cpu_ratio`` (raw CPU per run / facade CPU per run), the throughput ratio to expect when
  the CPUs are the limit, which other load on the machine disturbs less than runs/s.
* step-to-step latency: inside the steps (the facade's ``@step`` methods; the raw
  activities), the time from the end of one step's user code to the start of the next one's.
  For the facade this includes everything the library does in between: the projection write
  after a step, the workflow task that applies the directive, loading the next Context.
  ``facade_p50_ms``/``raw_p50_ms`` come from the throughput batches (so they include the
  queueing of ``--concurrency`` runs in flight); ``--probe`` runs, one at a time and
  alternating, give ``*_idle_p50_ms``, the cost per step without queueing.
* the projection: every facade run is a completed ``WorkflowRun`` with 3 ``StepExecution``
  rows and ``count == 3`` in its data; anything else fails the script (exit status 1).

The last line printed is one JSON object: ``facade_per_s``, ``raw_per_s``, ``ratio``,
``facade_p50_ms``, ``raw_p50_ms`` (plus p95s, idle p50s, run latencies, ``cpu_ratio`` and the
parameters).

This module's top level imports only the standard library and ``temporalio``: the workflow
sandbox re-imports it for every raw workflow run, as it re-imports
``temporal_worker.interpreter`` for every facade run. Django is set up inside ``main()``.
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
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

FACADE_WORKFLOW = "bench_three_steps"
RAW_WORKFLOW = "raw_three_steps"
FACADE_QUEUE = "bench-facade"
RAW_QUEUE = "bench-raw"
STEP_TIMEOUT = timedelta(hours=1)  # the library's STEP_TIMEOUT default
HEARTBEAT_TIMEOUT = timedelta(seconds=10)  # the library's HEARTBEAT_TIMEOUT default

# Side channel written by the steps of both implementations: (run key, step index) -> (start, end)
# of the step's user code, in time.perf_counter() seconds (one process, one clock).
TIMES: dict[tuple[str, int], tuple[float, float]] = {}


# ---------------------------------------------------------------------- raw temporalio
def _raw_step(state: dict[str, Any], index: int) -> dict[str, Any]:
    started = time.perf_counter()
    state = dict(state)
    state["count"] = state.get("count", 0) + 1  # the "user work", as in the facade's steps
    TIMES[(state["key"], index)] = (started, time.perf_counter())
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


@workflow.defn(name=RAW_WORKFLOW)
class RawThreeSteps:
    @workflow.run
    async def run(self, state: dict[str, Any]) -> dict[str, Any]:
        for name in ("raw.step_a", "raw.step_b", "raw.step_c"):
            state = await workflow.execute_activity(
                name, state, start_to_close_timeout=STEP_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT
            )
        return state


# ---------------------------------------------------------------------- the library
def define_facade_workflow() -> None:
    """The same workflow through the library (registered on import of ``facade``)."""
    from pydantic import BaseModel

    from facade import complete, get_context, goto, step, workflow

    def user_work(index: int) -> None:
        started = time.perf_counter()
        ctx = get_context()
        ctx.count += 1
        TIMES[(ctx.key, index)] = (started, time.perf_counter())

    @workflow(FACADE_WORKFLOW)
    class BenchThreeSteps:
        class Context(BaseModel):
            key: str
            count: int = 0

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


# ---------------------------------------------------------------------- helpers
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def step_gaps_ms(keys: list[str]) -> list[float]:
    """End of step i to start of step i+1, per run, in ms (consumes the side channel)."""
    gaps = []
    for key in keys:
        marks = [TIMES.pop((key, i)) for i in range(3)]
        gaps += [(marks[i + 1][0] - marks[i][1]) * 1000 for i in range(2)]
    return gaps


def server_pids() -> list[str]:
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


def workflow_runner(mode: str, kind: str) -> dict[str, Any]:
    """The ``workflow_runner`` argument of a worker for ``--sandbox`` (none: the worker's own)."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    if mode == "library":
        return {}  # the library's worker as it is; raw temporalio at its defaults
    if mode == "default":
        return {"workflow_runner": SandboxedWorkflowRunner()}
    if mode == "unsandboxed":
        return {"workflow_runner": UnsandboxedWorkflowRunner()}
    # passthrough: each workflow's own modules are imported once, not per run
    own = ("temporal_worker",) if kind == "facade" else (RawThreeSteps.__module__,)
    return {"workflow_runner": SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*own))}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env: Any = None
        self.client: Any = None
        self.workers: list[Any] = []
        self.worker_tasks: list[Any] = []
        self.facade_run_ids: list[int] = []
        self.server_pids: list[str] = []

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
        self.server_pids = server_pids()

        async def launch() -> None:
            import asyncio
            import concurrent.futures

            facade_worker = build_worker(
                self.client, FACADE_QUEUE, max_concurrent_steps=threads, **workflow_runner(self.args.sandbox, "facade")
            )
            raw_worker = Worker(
                self.client,
                task_queue=RAW_QUEUE,
                workflows=[RawThreeSteps],
                **workflow_runner(self.args.sandbox, "raw"),
                activities=[raw_step_a, raw_step_b, raw_step_c],
                activity_executor=concurrent.futures.ThreadPoolExecutor(
                    max_workers=threads, thread_name_prefix="raw-step"
                ),
                max_concurrent_activities=threads,
            )
            loop = asyncio.get_running_loop()
            self.workers = [facade_worker, raw_worker]
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

    # ------------------------------------------------------------------ one run of each kind
    def facade_run(self, key: str) -> tuple[int, dict[str, Any]]:
        from facade import engine
        from temporal_worker import client as bridge

        run = engine.start(FACADE_WORKFLOW, key=key)
        handle = self.client.get_workflow_handle(run.temporal_workflow_id)
        result = bridge.run_sync(handle.result(), timeout=self.args.timeout)
        return run.pk, result["context"]

    def raw_run(self, key: str) -> tuple[int, dict[str, Any]]:
        from temporal_worker import client as bridge

        handle = bridge.run_sync(
            self.client.start_workflow(RAW_WORKFLOW, {"key": key, "count": 0}, id=f"raw-{key}", task_queue=RAW_QUEUE),
            timeout=30,
        )
        return 0, bridge.run_sync(handle.result(), timeout=self.args.timeout)

    # ------------------------------------------------------------------ a batch
    def batch(self, kind: str, n: int, concurrency: int | None = None) -> dict[str, Any]:
        """Run ``n`` runs of ``kind`` with at most ``concurrency`` in flight; time them."""
        from django.db import connection

        one = self.facade_run if kind == "facade" else self.raw_run
        tag = uuid.uuid4().hex[:8]
        keys = [f"{kind}-{tag}-{i}" for i in range(n)]
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for key in keys:
            todo.put(key)
        results: list[tuple[str, int, dict[str, Any], float]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def drive() -> None:
            try:
                while True:
                    try:
                        key = todo.get_nowait()
                    except queue.Empty:
                        return
                    t0 = time.perf_counter()
                    run_id, context = one(key)
                    took = time.perf_counter() - t0
                    with lock:
                        results.append((key, run_id, context, took))
            except BaseException as exc:  # reported after the batch
                with lock:
                    errors.append(exc)
            finally:
                connection.close()  # this thread's Django connection

        drivers = [
            threading.Thread(target=drive, name=f"drive-{i}")
            for i in range(min(concurrency or self.args.concurrency, n))
        ]
        server = self.server_pids
        cpu_before = time.process_time(), cpu_seconds(server)
        started = time.perf_counter()
        for t in drivers:
            t.start()
        for t in drivers:
            t.join()
        elapsed = time.perf_counter() - started
        cpu_python, cpu_server = time.process_time() - cpu_before[0], cpu_seconds(server) - cpu_before[1]
        if errors:
            raise RuntimeError(f"{kind} batch: {len(errors)} run(s) failed; first: {errors[0]!r}") from errors[0]
        bad = [(key, ctx) for key, _, ctx, _ in results if ctx.get("count") != 3]
        if len(results) != n or bad:
            raise RuntimeError(f"{kind} batch: {len(results)}/{n} results, wrong contexts: {bad[:3]}")
        if kind == "facade":
            self.facade_run_ids += [run_id for _, run_id, _, _ in results]
        return {
            "per_s": n / elapsed,
            "elapsed": elapsed,
            "gaps_ms": step_gaps_ms(keys),
            "run_ms": [took * 1000 for *_, took in results],
            "cpu_python_ms": cpu_python * 1000 / n,
            "cpu_server_ms": cpu_server * 1000 / n,
            "cpu_busy": (cpu_python + cpu_server) / elapsed / (os.cpu_count() or 1),
        }

    # ------------------------------------------------------------------ the projection
    def check_projection(self) -> list[str]:
        from django.db.models import Count

        from django_bridge.models import StepExecution, WorkflowRun
        from facade import StepStatus, WorkflowStatus

        ids = self.facade_run_ids
        expected = len(ids)
        runs = WorkflowRun.objects.filter(name=FACADE_WORKFLOW)
        by_status = dict(runs.values_list("status").annotate(n=Count("id")))
        completed = runs.filter(status=WorkflowStatus.COMPLETED, data__count=3, progress=1.0).count()
        steps = StepExecution.objects.filter(run__name=FACADE_WORKFLOW)
        step_rows = steps.count()
        completed_steps = steps.filter(status=StepStatus.COMPLETED).count()
        per_run = set(steps.values("run_id").annotate(n=Count("id")).values_list("n", flat=True))
        problems = []
        if runs.count() != expected or completed != expected:
            problems.append(
                f"{expected} runs expected, all completed with count=3; found {runs.count()} rows by status {by_status}, {completed} complete with count=3"
            )
        if step_rows != 3 * expected or completed_steps != 3 * expected or per_run - {3}:
            problems.append(
                f"{3 * expected} completed step rows expected (3 per run); found {step_rows} ({completed_steps} completed), per-run counts {sorted(per_run)}"
            )
        if set(runs.values_list("id", flat=True)) != set(ids):
            problems.append("the run rows are not the runs that were started")
        print(f"projection: {completed}/{expected} runs completed, {step_rows} step rows (3N = {3 * expected})")
        return problems


def summarise(kind: str, rounds: list[dict[str, Any]]) -> dict[str, float]:
    gaps = [g for r in rounds for g in r["gaps_ms"]]
    runs = [t for r in rounds for t in r["run_ms"]]
    out = {
        "per_s": statistics.median(r["per_s"] for r in rounds),
        "p50_ms": percentile(gaps, 50),
        "p95_ms": percentile(gaps, 95),
        "run_p50_ms": percentile(runs, 50),
        "run_p95_ms": percentile(runs, 95),
        "cpu_ms": statistics.median(r["cpu_python_ms"] + r["cpu_server_ms"] for r in rounds),
    }
    per_round = ", ".join(f"{r['per_s']:.1f}" for r in rounds)
    print(
        f"{kind:>6}: {out['per_s']:7.1f} runs/s (median of {per_round}); "
        f"step-to-step p50 {out['p50_ms']:.2f} ms, p95 {out['p95_ms']:.2f} ms; "
        f"run start-to-result p50 {out['run_p50_ms']:.1f} ms, p95 {out['run_p95_ms']:.1f} ms"
    )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="runs per batch (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="facade/raw batch pairs, alternating (default 3)")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight at once (default 20)")
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
        help="runs of each kind one at a time first, for the latency without queueing (default 10; 0 skips)",
    )
    parser.add_argument(
        "--sandbox",
        choices=("library", "default", "passthrough", "unsandboxed"),
        default="library",
        help="how both workers run their workflows: library (the library's worker as it ships, raw temporalio "
        "at its defaults; the default), default (temporalio's sandbox), passthrough (the sandbox, each "
        "workflow's own modules imported once), unsandboxed",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one run may take (default 120)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.concurrency < 1 or args.threads < 1 or args.warmup < 0 or args.probe < 0:
        parser.error("--n, --rounds, --concurrency and --threads must be at least 1, --warmup and --probe at least 0")
    return args


def prepare() -> tempfile.TemporaryDirectory[str]:
    """Django on a fresh SQLite file in a temporary directory, the bench's workflow declared."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (here, os.path.dirname(here)):  # bench_settings, and the project's packages
        if path not in sys.path:
            sys.path.insert(0, path)
    tmp = tempfile.TemporaryDirectory(prefix="automation-bench-")
    os.environ["BENCH_DB"] = os.path.join(tmp.name, "bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    for var in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"):
        os.environ.pop(var, None)  # the bench always uses its own dev server

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    define_facade_workflow()
    # The workflow sandbox re-imports each workflow's module for every new run (the
    # interpreter for the facade, this file for the raw workflow). Without a bytecode cache
    # (PYTHONDONTWRITEBYTECODE) that is a compile per run on both sides, which a deployed
    # worker does not pay: cache bytecode compiled from now on in the temporary directory.
    sys.dont_write_bytecode = False
    sys.pycache_prefix = os.path.join(tmp.name, "pycache")
    return tmp


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = prepare()

    print(
        f"bench: N={args.n} runs per batch, {args.rounds} rounds (facade and raw alternating), "
        f"{args.concurrency} in flight, {args.threads} activity threads per worker, {os.cpu_count()} CPUs; "
        "a run is done when its Temporal workflow returns (facade: handle of run.temporal_workflow_id), "
        "the projection is checked at the end",
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
            for kind in ("facade", "raw"):
                bench.batch(kind, args.warmup)
            print(f"warm-up: {args.warmup} runs of each", flush=True)
        idle: dict[str, list[float]] = {"facade": [], "raw": []}
        for _ in range(args.probe):  # one run at a time, alternating: latency without queueing
            for kind in ("facade", "raw"):
                idle[kind] += bench.batch(kind, 1, concurrency=1)["gaps_ms"]
        if args.probe:
            for kind in ("facade", "raw"):
                print(
                    f"idle step-to-step ({args.probe} runs one at a time) {kind:>6}: "
                    f"p50 {percentile(idle[kind], 50):.2f} ms, p95 {percentile(idle[kind], 95):.2f} ms",
                    flush=True,
                )
            print(
                f"idle: facade p50 - raw p50 = {percentile(idle['facade'], 50) - percentile(idle['raw'], 50):.2f} ms "
                "(the library's own cost per step, without queueing)",
                flush=True,
            )
        results: dict[str, list[dict[str, Any]]] = {"facade": [], "raw": []}
        for i in range(args.rounds):
            order = ("facade", "raw") if i % 2 == 0 else ("raw", "facade")
            for kind in order:
                r = bench.batch(kind, args.n)
                results[kind].append(r)
                print(
                    f"round {i + 1} {kind:>6}: {args.n} runs in {r['elapsed']:.2f}s = {r['per_s']:.1f} runs/s; CPU per run: "
                    f"worker process {r['cpu_python_ms']:.1f} ms, "
                    + (
                        f"dev server {r['cpu_server_ms']:.1f} ms ({r['cpu_busy']:.0%} of all CPUs busy with both)"
                        if bench.server_pids
                        else "dev server n/a (no /proc)"
                    ),
                    flush=True,
                )
        facade = summarise("facade", results["facade"])
        raw = summarise("raw", results["raw"])
        problems = bench.check_projection()
        ratio = facade["per_s"] / raw["per_s"]
        cpu_ratio = raw["cpu_ms"] / facade["cpu_ms"] if bench.server_pids and facade["cpu_ms"] else None
        if cpu_ratio is not None:
            print(
                f"CPU per run (worker process + dev server, median): facade {facade['cpu_ms']:.1f} ms, raw {raw['cpu_ms']:.1f} ms; "
                f"raw/facade = {cpu_ratio:.2f}, the throughput ratio to expect when the CPUs are the limit "
                "(less sensitive than runs/s to other load on the machine)"
            )
        p50_diff = facade["p50_ms"] - raw["p50_ms"]
        met = ratio >= 0.8 and p50_diff <= 5.0
        print(
            f"ratio {ratio:.2f} (target >= 0.80), facade p50 - raw p50 = {p50_diff:.2f} ms (target <= 5): {'met' if met else 'NOT met'}"
        )
        summary = {
            "facade_per_s": round(facade["per_s"], 2),
            "raw_per_s": round(raw["per_s"], 2),
            "ratio": round(ratio, 3),
            "facade_p50_ms": round(facade["p50_ms"], 3),
            "raw_p50_ms": round(raw["p50_ms"], 3),
            "facade_p95_ms": round(facade["p95_ms"], 3),
            "raw_p95_ms": round(raw["p95_ms"], 3),
            "facade_run_p50_ms": round(facade["run_p50_ms"], 2),
            "raw_run_p50_ms": round(raw["run_p50_ms"], 2),
            **(
                {
                    "facade_idle_p50_ms": round(percentile(idle["facade"], 50), 3),
                    "raw_idle_p50_ms": round(percentile(idle["raw"], 50), 3),
                }
                if args.probe
                else {}
            ),
            **({"cpu_ratio": round(cpu_ratio, 3)} if cpu_ratio is not None else {}),
            "n": args.n,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "projection_ok": not problems,
        }
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
