"""Long-running agents: routing among many instances, spawning, history size, worker memory.

The agent (``scripts/benchapp/agents.py``) has one instance per ``Account``, spawned by its
``account_opened`` event, and handles the ``ping_sent`` events of that account's ``Ping`` rows
(a handler ``match`` on another model). Its handlers note when they start in a file.

- ``agent_route_p50_ms``: the commit of a ping's save to the start of its handler in the one
  instance it concerns, while 10,000 instances of the agent are active (``--route`` pings, one
  at a time, random accounts); ``agent_route_p50_ms_10`` the same with 10 instances and
  ``agent_route_ratio`` the first over the second. Targets: 100 ms or less, ratio 2 or less.
- ``agent_spawn_per_s``: instances created per second through the real spawn path (accounts
  saved, ``--batch`` per transaction, their spawn events routed, each instance's workflow started
  and its spawn handler run), at most ``--window`` instances being spawned at once;
  ``agent_spawn_seconds`` the time it took for all of them, ``agent_spawn_cpu_ms_per_instance``
  the CPU each process spent per instance (two workflows per instance, the event's and the
  agent's: six workflow tasks and four activities).
- ``agent_history_events_max``: the largest Temporal history (events) of any run in the
  continue-as-new chain of one instance after it handled ``--events`` pings. Target: 10,000 or
  less. ``agent_events_handled`` counts the pings whose handler ran, ``agent_events_duplicated``
  those it ran for more than once in a first attempt (a second delivery), and
  ``agent_handler_retries`` Temporal retries; the script fails unless every ping was handled
  exactly once. ``agent_events_per_s``: how many of them the one instance handled per second.
- ``agent_worker_rss_mb_10k``: the worker process's resident memory with 10,000 idle instances
  (``agent_worker_rss_mb_base`` once the worker is up and warm). Target: 300 MB or less.

Behind it: the Temporal dev server from the virtualenv, the library's worker in a separate
process (``manage.py temporal_worker`` on this script's settings, so its memory is its own),
SQLite with ``django_bridge.sqlite.SQLITE_OPTIONS`` in a temporary directory shared by both
processes. The CPU each process used per phase is printed too, to show where the time goes.
The last line printed is one JSON object.

Spawning costs about 0.2 s of CPU per instance (worker and dev server together), so on a 2-core
machine the full run takes the better part of an hour; ``BENCH_QUICK=1`` runs a smaller version
(1,000 instances, 500 events) in about five minutes. ``--runner`` and ``--max-cached-workflows``
are experiments on the worker: the workflow sandbox's share of CPU and memory, and how the size of
the workflow cache (instances kept in memory; the others are replayed from their history when an
event reaches them) weighs on memory and routing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import bench_common
from bench_common import AppendedLines, cpu_seconds, percentile, setup_paths

AGENT = "bench_account"


def configure(db_path: str, address: str = "localhost:7233", task_queue: str = "bench-agents") -> None:
    bench_common.configure(
        db_path,
        secret_key="bench-agents-not-secret",
        installed_apps=["django.contrib.contenttypes", "django.contrib.auth", "django_bridge", "benchapp"],
        automation={
            "TEMPORAL_ADDRESS": address,
            "TASK_QUEUE": task_queue,
            "WORKFLOW_MODULES": ["benchapp.agents"],
            "EVENT_SWEEP_INTERVAL": 3600.0,  # every dispatch goes through on commit here
        },
    )


# ---------------------------------------------------------------------- the worker process
def run_worker(args: argparse.Namespace) -> int:
    """``--worker``: this script's settings, then ``manage.py temporal_worker`` until SIGTERM."""
    setup_paths()
    os.environ["BENCH_AGENTS_LOG"] = args.log
    configure(args.db, args.address, args.task_queue)
    import django
    from django.core.management import call_command

    django.setup()
    if args.runner != "library" or args.max_cached_workflows:
        patch_worker(args.runner, args.max_cached_workflows)
    call_command("temporal_worker", task_queue=args.task_queue, max_concurrent_steps=args.steps)
    return 0


def patch_worker(runner: str, max_cached_workflows: int | None) -> None:
    """Experiments on the worker the command builds: how the workflow sandbox and the size of the
    workflow cache weigh on CPU and memory (``--runner``, ``--max-cached-workflows``)."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from temporal_worker import worker as worker_module

    original = worker_module.build_worker

    def build_worker(*args: Any, **kwargs: Any) -> Any:
        if runner == "unsandboxed":
            kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
        elif runner == "sandboxed":  # temporalio's default runner
            kwargs["workflow_runner"] = SandboxedWorkflowRunner()
        elif runner == "passthrough":  # the sandbox shares the library's modules instead of re-importing them
            restrictions = SandboxRestrictions.default.with_passthrough_modules("temporal_worker")
            kwargs["workflow_runner"] = SandboxedWorkflowRunner(restrictions=restrictions)
        if max_cached_workflows:
            kwargs["max_cached_workflows"] = max_cached_workflows
        return original(*args, **kwargs)

    worker_module.build_worker = build_worker


# ---------------------------------------------------------------------- measuring
def summarise_output(lines: list[str]) -> str:
    """The worker's output in a few words: how many lines of each kind (a Temporal core warning
    code, or the message without its time and colours)."""

    def kind(line: str) -> str:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if code := re.search(r"TMPRL\d+", line):
            return code.group(0)
        return re.sub(r"^\S*\d{4}-\d\d-\d\dT\S+\s*", "", line)[:100]

    return "; ".join(f"{k} (x{n})" for k, n in Counter(kind(line) for line in lines).most_common(6))


wait_until = functools.partial(bench_common.wait_until, script="bench_agents", interval=0.005)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_pids(name: str) -> list[int]:
    """This process's children whose command is ``name`` (the dev server), on Linux."""
    found = []
    for path in glob.glob("/proc/self/task/*/children"):
        with contextlib.suppress(OSError), open(path) as f:
            for pid in f.read().split():
                with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as comm:
                    if comm.read().strip().startswith(name):
                        found.append(int(pid))
    return found


class CpuMeter:
    """CPU seconds used by the bench process, the worker and the dev server over a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.mark()

    def mark(self) -> None:
        self.at = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.wall = time.perf_counter()

    def report(self, phase: str) -> dict[str, float]:
        used = {name: round(cpu_seconds(pid) - self.at[name], 1) for name, pid in self.pids.items()}
        wall = time.perf_counter() - self.wall
        print(
            f"  CPU over {phase} ({wall:.1f} s wall): "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in used.items()),
            flush=True,
        )
        self.mark()
        return used


class HandlerLog(AppendedLines):
    """Reads the handlers' notes as they are appended: ``<kind> <key> <started> <attempt>``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.started: dict[str, dict[int, float]] = {"opened": {}, "ping": {}}
        self.first_attempts: dict[str, Counter[int]] = {"opened": Counter(), "ping": Counter()}
        self.retries = 0

    def read(self) -> HandlerLog:
        for line in self.new_lines():
            kind, key, started, attempt = line.split()
            self.started[kind].setdefault(int(key), float(started))
            if int(attempt) > 1:
                self.retries += 1
            else:
                self.first_attempts[kind][int(key)] += 1
        return self

    def has(self, kind: str, key: int) -> bool:
        return key in self.read().started[kind]


# ---------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, args: argparse.Namespace, log: HandlerLog) -> None:
        self.args = args
        self.log = log
        self.accounts: list[int] = []

    def spawn(self, count: int, *, progress: bool = False) -> float:
        """Open ``count`` accounts (``--batch`` per transaction) and wait until each one's instance
        ran its spawn handler; at most ``--window`` instances on the way at once. Returns seconds."""
        from benchapp.models import Account
        from django.db import transaction

        began = time.perf_counter()
        new: list[int] = []
        pending: set[int] = set()
        step, reported, reported_t = max(1000, count // 10), 0, began

        def outstanding() -> int:
            started = self.log.read().started["opened"]
            pending.difference_update([k for k in pending if k in started])
            return len(pending)

        while len(new) < count:
            with transaction.atomic():
                batch = [Account.objects.create().pk for _ in range(min(self.args.batch, count - len(new)))]
            new.extend(batch)
            pending.update(batch)
            wait_until(
                lambda: outstanding() <= self.args.window,
                600,
                f"spawning instances ({len(new)} accounts opened, {len(pending)} not spawned yet)",
                interval=0.05,
            )
            done = len(new) - len(pending)
            if progress and done - reported >= step:
                now = time.perf_counter()
                print(f"  {len(self.accounts) + done} instances, lately {(done - reported) / (now - reported_t):.0f}/s")
                reported, reported_t = done, now
        wait_until(lambda: outstanding() == 0, 600, f"the last {len(pending)} spawns", interval=0.05)
        self.accounts.extend(new)
        return time.perf_counter() - began

    def route_latencies(self, n: int, accounts: list[int]) -> list[float]:
        """Pings to random accounts, one at a time: commit -> the handler's start, in ms."""
        from benchapp.models import Ping
        from django.db import transaction

        rng = random.Random(n + len(accounts))
        latencies = []
        for _ in range(n):
            committed: list[float] = []
            with transaction.atomic():
                # Registered first, so it runs first after the commit, before the dispatch.
                transaction.on_commit(lambda c=committed: c.append(time.time()))
                ping = Ping.objects.create(account_id=rng.choice(accounts))
            wait_until(lambda pk=ping.pk: self.log.has("ping", pk), 60, f"the handler of ping {ping.pk}")
            latencies.append((self.log.started["ping"][ping.pk] - committed[0]) * 1000)
        return latencies

    def timed_routing(self, instances: int, cpu: CpuMeter) -> list[float]:
        """``route_latencies`` for ``--route`` pings, printed with the CPU they cost."""
        latencies = self.route_latencies(self.args.route, self.accounts)
        print(
            f"commit -> handler start, {instances} instances, {self.args.route} pings: "
            f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms",
            flush=True,
        )
        cpu.report("routing")
        return latencies

    def flood(self, account: int, n: int) -> tuple[list[int], float]:
        """``n`` pings for one account (100 per transaction, at most ``--window`` unhandled)."""
        from benchapp.models import Ping
        from django.db import transaction

        began = time.perf_counter()
        pings: list[int] = []
        pending: set[int] = set()

        def outstanding() -> int:
            started = self.log.read().started["ping"]
            pending.difference_update([k for k in pending if k in started])
            return len(pending)

        while len(pings) < n:
            with transaction.atomic():
                batch = [Ping.objects.create(account_id=account).pk for _ in range(min(100, n - len(pings)))]
            pings.extend(batch)
            pending.update(batch)
            wait_until(
                lambda: outstanding() <= self.args.window, 600, f"handling pings ({len(pings)} sent)", interval=0.05
            )
        wait_until(lambda: outstanding() == 0, 600, f"the last {len(pending)} pings' handlers", interval=0.05)
        return pings, time.perf_counter() - began


def history_lengths(client: Any, workflow_id: str) -> list[int]:
    """The history length of each run in the workflow's continue-as-new chain, oldest first."""
    from temporal_worker import client as bridge

    async def lengths() -> list[tuple[Any, int]]:
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        found = []
        for w in runs:
            history = await client.get_workflow_handle(workflow_id, run_id=w.run_id).fetch_history()
            found.append((w.start_time, len(history.events)))
        return found

    return [n for _, n in sorted(bridge.run_sync(lengths(), timeout=300), key=lambda r: r[0])]


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000 if quick else 10_000, help="active instances (10,000)")
    parser.add_argument("--few", type=int, default=10, help="instances for the baseline routing figure (10)")
    parser.add_argument("--route", type=int, default=30 if quick else 100, help="pings timed per routing figure (100)")
    parser.add_argument(
        "--events", type=int, default=500 if quick else 5000, help="events one instance handles (5,000)"
    )
    parser.add_argument("--batch", type=int, default=100, help="accounts opened per transaction (100)")
    parser.add_argument("--window", type=int, default=300, help="instances or pings on the way at once (300)")
    parser.add_argument("--steps", type=int, default=16, help="the worker's --max-concurrent-steps (16, the default)")
    parser.add_argument(
        "--in-process-worker", action="store_true", help="run the worker in this process (its RSS is then this one's)"
    )
    parser.add_argument(
        "--runner",
        choices=["library", "sandboxed", "passthrough", "unsandboxed"],
        default="library",
        help="experiment: the worker's workflow runner (default: the library's, which runs its workflows unsandboxed)",
    )
    parser.add_argument(
        "--max-cached-workflows",
        type=int,
        help="experiment: the worker's workflow cache (default: temporalio's, 1,000)",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="compile modules from source each time they are imported (as PYTHONDONTWRITEBYTECODE=1 without .pyc files)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    setup_paths()
    tmp = tempfile.TemporaryDirectory(prefix="automation-bench-agents-")
    db_path = os.path.join(tmp.name, "bench.sqlite3")
    log_path = os.path.join(tmp.name, "handlers.log")
    task_queue = f"bench-agents-{os.getpid()}"
    # The workflow sandbox imports the workflow modules again for every workflow run it creates
    # (a new run, or one replayed after it left the worker's cache). An installed package has
    # their bytecode; a source checkout under PYTHONDONTWRITEBYTECODE=1 compiles them each time
    # (some 20 ms of CPU per run here). Bytecode goes to a cache in the temporary directory.
    worker_env = dict(os.environ)
    if not args.no_bytecode_cache:
        sys.pycache_prefix = worker_env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp.name, "pycache")
        sys.dont_write_bytecode = False
        worker_env.pop("PYTHONDONTWRITEBYTECODE", None)
    configure(db_path, task_queue=task_queue)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)

    from benchapp.models import Account

    from django_bridge.models import WorkflowRun
    from facade.testing import TemporalTestEnvironment

    if args.in_process_worker and (args.runner != "library" or args.max_cached_workflows):
        patch_worker(args.runner, args.max_cached_workflows)
    log = HandlerLog(log_path)
    bench = Bench(args, log)
    worker: subprocess.Popen[str] | None = None
    worker_output: list[str] = []
    try:
        with TemporalTestEnvironment(
            start_worker=args.in_process_worker,
            task_queue=task_queue,
            max_concurrent_steps=args.steps,
            heartbeat_timeout=10.0,  # the library's default, as the worker process has it
        ) as env:
            if args.in_process_worker:
                os.environ["BENCH_AGENTS_LOG"] = log_path
                worker_pid = os.getpid()
            else:
                address = env.client.service_client.config.target_host
                worker = bench_common.start_worker(
                    [sys.executable, os.path.abspath(__file__), "--worker", "--db", db_path, "--address", address]
                    + ["--task-queue", task_queue, "--log", log_path, "--steps", str(args.steps)]
                    + ["--runner", args.runner]
                    + (["--max-cached-workflows", str(args.max_cached_workflows)] if args.max_cached_workflows else []),
                    script="bench_agents",
                    env=worker_env,
                    output=worker_output,
                )
                worker_pid = worker.pid
            print(f"bench_agents: dev server and worker (pid {worker_pid}) up, task queue {task_queue}", flush=True)
            servers = child_pids("temporal")
            pids = {"bench": os.getpid()} | ({} if worker is None else {"worker": worker_pid})
            pids |= {"server": servers[0]} if servers else {}
            cpu = CpuMeter(pids)

            # Warm up: the first dispatch connects, the first workflows load code.
            bench.spawn(args.few)
            bench.route_latencies(5, bench.accounts)
            rss_base = rss_mb(worker_pid)
            cpu.report("the warm-up")

            # 1. Routing with few instances.
            few = bench.timed_routing(args.few, cpu)
            p50_few = statistics.median(few)

            # 2. Spawning the rest, through the spawn events.
            more = args.instances - args.few
            print(f"spawning {more} instances ({args.batch} accounts per transaction)...", flush=True)
            spawn_s = bench.spawn(more, progress=True)
            spawn_per_s = more / spawn_s
            print(f"spawned {more} instances in {spawn_s:.1f} s: {spawn_per_s:.1f}/s", flush=True)
            spawn_cpu = cpu.report("spawning")
            active = WorkflowRun.objects.filter(kind="agent", name=AGENT, status="running").count()
            assert active == args.instances, f"{active} active instances, expected {args.instances}"
            time.sleep(2)  # let the last workflow tasks settle before reading the worker's memory
            rss_many = rss_mb(worker_pid)
            print(f"worker RSS: {rss_base:.0f} MB warm, {rss_many:.0f} MB with {args.instances} idle instances")

            # 3. Routing with many instances.
            many = bench.timed_routing(args.instances, cpu)
            p50_many = statistics.median(many)
            print(f"routing among {args.instances} vs {args.few} instances: ratio {p50_many / p50_few:.2f}", flush=True)

            # 4. One instance handles many events: continue-as-new keeps its history bounded.
            busy = Account.objects.create().pk
            wait_until(lambda: log.has("opened", busy), 120, "the busy instance's spawn")
            pings, flood_s = bench.flood(busy, args.events)
            print(f"one instance handled {args.events} events in {flood_s:.1f} s: {args.events / flood_s:.1f}/s")
            cpu.report("the busy instance")
            run = WorkflowRun.objects.get(kind="agent", name=AGENT, data__account_id=busy)
            chain = history_lengths(env.client, run.temporal_workflow_id)
            print(f"its continue-as-new chain: {len(chain)} runs, history events {chain}")
            time.sleep(1)
            log.read()
            handled = sum(1 for p in pings if p in log.started["ping"])
            duplicated = sum(1 for p in pings if log.first_attempts["ping"][p] > 1)
            opened_twice = sum(1 for n in log.first_attempts["opened"].values() if n > 1)
            run.refresh_from_db()
            rss_end = rss_mb(worker_pid)
    finally:
        bench_common.stop_worker(worker)

    problems = []
    if handled != args.events or duplicated or opened_twice:
        problems.append(
            f"{handled} of {args.events} pings handled, {duplicated} handled twice, "
            f"{opened_twice} spawn handlers ran twice"
        )
    if run.data.get("pings") != args.events:
        problems.append(f"the busy instance's Context counted {run.data.get('pings')} pings, not {args.events}")
    result = {
        "agent_route_p50_ms": round(p50_many, 1),
        "agent_route_p95_ms": round(percentile(many, 0.95), 1),
        "agent_route_p50_ms_10": round(p50_few, 1),
        "agent_route_p95_ms_10": round(percentile(few, 0.95), 1),
        "agent_route_ratio": round(p50_many / p50_few, 2),
        "agent_spawn_per_s": round(spawn_per_s, 1),
        "agent_spawn_seconds": round(spawn_s, 1),
        "agent_spawn_cpu_ms_per_instance": {k: round(v * 1000 / more, 1) for k, v in spawn_cpu.items()},
        "agent_history_events_max": max(chain),
        "agent_history_runs": len(chain),
        "agent_events_handled": handled,
        "agent_events_duplicated": duplicated,
        "agent_handler_retries": log.retries,
        "agent_events_per_s": round(args.events / flood_s, 1),
        "agent_worker_rss_mb_base": round(rss_base, 1),
        "agent_worker_rss_mb_10k": round(rss_many, 1),
        "agent_worker_rss_mb_end": round(rss_end, 1),
        "instances": args.instances,
        "runner": args.runner,
        "worker": "in-process" if args.in_process_worker else "own process",
        "events": args.events,
        "route_pings": args.route,
    }
    if worker_output:
        print(f"the worker said {len(worker_output)} lines: {summarise_output(worker_output)}")
    for problem in problems:
        print(f"bench_agents: FAILED: {problem}", flush=True)
    print(json.dumps(result))
    tmp.cleanup()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
