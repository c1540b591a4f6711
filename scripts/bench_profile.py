"""Where a run's CPU goes: ``bench.py``'s workload under ``py-spy``, per run, facade and raw.

Runs ``bench.py``'s setup (dev server, both workers in this process), a warm-up, then one
batch of ``--n`` facade runs and one of raw runs, each sampled by ``py-spy record --gil``
attached to this process (only the thread holding the GIL is sampled, so the samples are the
Python CPU time). Prints, per run of each kind:

* the CPU of this process by OS thread name (the Python threads; the Temporal core's Rust
  threads, which py-spy does not see) and of the dev server;
* the Python CPU time by area (the workflow sandbox, the step activity and its parts, the
  Django ORM, payload conversion, ...), inclusive;
* the top functions by their own (self) time.

``py-spy`` comes with the test extras (``pip install -e .[test]``); it needs to be allowed to read this
process's memory (ptrace). The numbers are CPU milliseconds per run; on a busy machine they
are steadier than runs per second.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402  (the workload, its workflows and its setup)

# Areas: a stack belongs to the first area (in this order, so the narrower ones come first)
# one of whose frames is that function in a file whose path contains that text.
AREAS: list[tuple[str, str, str]] = [
    ("step: user code (the bench's step methods)", "user_work", "bench.py"),
    ("step: projection write (record_directive)", "record_directive", "temporal_worker/projection.py"),
    ("step: load the context, arguments (_prepare)", "_prepare", "temporal_worker/activities/steps.py"),
    ("step: decide the outcome (_decide)", "_decide", "temporal_worker/activities/steps.py"),
    ("step: heartbeat ticker", "", "temporal_worker/activities/heartbeat.py"),
    ("activity: dispatch, rest", "dispatch", "temporal_worker/activities/__init__.py"),
    ("engine.start", "start", "temporal_worker/engine.py"),
    ("raw: start_workflow and result (driver)", "raw_run", "bench.py"),
    ("facade: await result (driver)", "facade_run", "bench.py"),
    ("workflow: sandbox: new instance (module re-imports)", "_create_workflow_instance", "temporalio/worker/"),
    ("workflow: sandbox: activations", "activate", "temporalio/worker/workflow_sandbox/"),
    ("workflow: activations", "activate", "temporalio/worker/_workflow_instance.py"),
    ("workflow: worker (task handling, converters)", "", "temporalio/worker/_workflow.py"),
    ("activity: worker (task handling, converters)", "", "temporalio/worker/_activity.py"),
    ("the thread pools", "", "concurrent/futures/thread.py"),
    ("event loop, rest", "", "asyncio/base_events.py"),
]


def _matches(frame: str, func: str, path: str) -> bool:
    name, _, where = frame.partition(" (")
    return (not func or name == func or name.endswith("." + func)) and path in where


TOTALS = [
    ("Django ORM / sqlite (anywhere)", ("django/db/",)),
    ("payload conversion (anywhere)", ("temporalio/converter.py",)),
    ("json (anywhere)", ("json/encoder.py", "json/decoder.py", "json/__init__.py")),
    ("pydantic (anywhere)", ("pydantic/", "pydantic_core/")),
    ("protobuf (anywhere)", ("google/protobuf",)),
]


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's OS threads, summed by thread name."""
    out: dict[str, float] = collections.defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/self/task/{tid}/stat") as f:
                raw = f.read()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def parse(path: str) -> tuple[list[tuple[list[str], int]], int]:
    stacks, total = [], 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            frames, _, count = line.rpartition(" ")
            stacks.append((frames.split(";"), int(count)))
            total += int(count)
    return stacks, total


def report(kind: str, path: str, rate: int, n: int, cpu: dict[str, float], server_ms: float) -> None:
    stacks, total = parse(path)
    per_run = 1000.0 / rate / n  # ms per run, per sample
    print(f"\n=== {kind}: {n} runs, {total} samples of the GIL holder at {rate}/s ===")
    print("CPU per run by OS thread (ms):")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if seconds > 0:
            print(f"  {seconds * 1000 / n:8.2f}  {name}")
    print(f"  {sum(cpu.values()) * 1000 / n:8.2f}  = this process")
    print(f"  {server_ms:8.2f}  dev server")
    print(f"Python (GIL held) per run: {total * per_run:.2f} ms, by area (inclusive):")
    areas: dict[str, int] = collections.Counter()
    for frames, count in stacks:
        for area, func, where in AREAS:
            if any(_matches(frame, func, where) for frame in frames):
                areas[area] += count
                break
        else:
            areas["other"] += count
    for area, count in areas.most_common():
        print(f"  {count * per_run:8.2f}  {area}")
    print("Anywhere in the stack:")
    for label, markers in TOTALS:
        count = sum(c for frames, c in stacks if any(m in fr for fr in frames for m in markers))
        print(f"  {count * per_run:8.2f}  {label}")
    own: dict[str, int] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
    print("Top functions by self time:")
    for frame, count in own.most_common(25):
        print(f"  {count * per_run:8.2f}  {frame[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="runs per profiled batch (default 300)")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight (default 20)")
    parser.add_argument("--threads", type=int, default=16, help="activity threads per worker (default 16)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--kinds", default="facade,raw", help="which batches, in order (default facade,raw)")
    parser.add_argument("--sandbox", default="library", help="bench.py's --sandbox (default library)")
    parser.add_argument("--keep", help="directory to keep the raw py-spy outputs in")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        parser.error("py-spy is not installed: pip install py-spy")
    tmp = bench.prepare()
    out_dir = args.keep or tempfile.mkdtemp(prefix="bench-profile-")
    os.makedirs(out_dir, exist_ok=True)
    load = bench.parse_args(
        ["--n", str(args.n), "--concurrency", str(args.concurrency), "--threads", str(args.threads)]
        + ["--sandbox", args.sandbox]
    )
    b = bench.Bench(load)
    try:
        b.start()
        for kind in ("facade", "raw"):
            b.batch(kind, 30)
        for kind in args.kinds.split(","):
            path = os.path.join(out_dir, f"{kind}.txt")
            proc = subprocess.Popen(
                [spy, "record", "--pid", str(os.getpid()), "--gil", "--format", "raw", "--rate", str(args.rate)]
                + ["--output", path, "--function", "--full-filenames"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.5)  # py-spy attached
            before, server_before = thread_cpu(), bench.cpu_seconds(b.server_pids)
            b.batch(kind, args.n)
            after, server_after = thread_cpu(), bench.cpu_seconds(b.server_pids)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            cpu = {name: after[name] - before.get(name, 0.0) for name in after}
            report(kind, path, args.rate, args.n, cpu, (server_after - server_before) * 1000 / args.n)
        print(f"\nraw py-spy outputs: {out_dir}")
    finally:
        b.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    os._exit(status)
