"""Disk and memory per experiment: ratchet's RSS over one long run, and what each experiment leaves in its logs.

One real loop (``Loop.run``, no sandbox) on a small repository: an in-process proposer rewrites
one line of a file in the scope, the metric command prints a few kilobytes of output and then a
number that never beats the champion, so every experiment is measured and discarded (the path
almost every experiment of a long run takes). ``--keep-every K`` makes every K-th proposal a
keep instead, ``--crash-every K`` every K-th one crash (its output tail is what a proposer is
told). ratchet's resident set size (VmRSS of /proc/self/status, after a ``gc.collect()``) is
printed at the checkpoints, with the growth from the first one; then the log files and bytes
per experiment.

Run:  python benchmarks/memory.py [--n 1000] [--at 100,500,1000] [--trace]
(``--trace``: tracemalloc's top growth between the first and the last checkpoint; slower.)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from ratchet import Loop, Proposal, ProposalContext, Proposer
from ratchet.config import parse_config
from ratchet.events import RunObserver
from ratchet.experiment import Experiment
from _common import commit_all


# About 4 KB of output before the number: a tail as long as the one the ledger keeps.
METRIC = """i=0; while [ $i -lt 120 ]; do echo "step $i of the benchmark: loss 0.25, accuracy 0.75, fine"; i=$((i+1)); done
if [ -f crash.txt ]; then echo "Traceback: the candidate crashed" >&2; exit 1; fi
cat value.txt"""


# The guard of --failing-guard: 2 KB of a test suite's output, then it fails on every change of the value.
GUARD = """i=0; while [ $i -lt 40 ]; do echo "test_case_$i ... FAILED: expected 1, got 2"; i=$((i+1)); done
[ "$(cat value.txt)" -ge 1000000 ]"""


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def make_repo(root: Path) -> Path:
    root.mkdir()
    for f in range(20):
        (root / f"module{f}.py").write_text(f"VALUE = {f}\n")
    (root / "target.txt").write_text("original\n")
    (root / "value.txt").write_text("1000000\n")
    (root / "metric.sh").write_text(METRIC + "\n")
    (root / "guard.sh").write_text(GUARD + "\n")
    return commit_all(root)


class Scripted(Proposer):
    """Discards, with a keep every ``keep_every`` proposals and a crash every ``crash_every``."""

    kind = "scripted"

    def __init__(self, keep_every: int, crash_every: int) -> None:
        self.keep_every = keep_every
        self.crash_every = crash_every
        self.count = 0
        self.value = 1_000_000

    def propose(self, context: ProposalContext) -> Proposal:
        self.count += 1
        if self.crash_every and self.count % self.crash_every == 0:
            return Proposal(hypothesis=f"crash {self.count}", edits={"crash.txt": "1\n"})
        if self.keep_every and self.count % self.keep_every == 0:
            self.value -= 1
            return Proposal(hypothesis=f"value {self.value}", edits={"value.txt": f"{self.value}\n"})
        return Proposal(hypothesis=f"no-op {self.count}", edits={"target.txt": f"changed {self.count}\n"})


class Checkpoints(RunObserver):
    """RSS (and, tracing, a tracemalloc snapshot) when the given experiment ids are done."""

    def __init__(self, at: list[int], trace: bool) -> None:
        self.at = set(at)
        self.trace = trace
        self.rss: dict[int, int] = {}
        self.fds: dict[int, int] = {}
        self.times: dict[int, float] = {}
        self.snapshots: dict[int, tracemalloc.Snapshot] = {}
        self.started = time.perf_counter()

    def experiment_done(self, experiment: Experiment) -> None:
        if experiment.id not in self.at:
            return
        gc.collect()
        self.rss[experiment.id] = rss_kb()
        self.fds[experiment.id] = len(os.listdir("/proc/self/fd"))  # logs or ledgers kept open would show here
        self.times[experiment.id] = time.perf_counter() - self.started
        if self.trace:
            self.snapshots[experiment.id] = tracemalloc.take_snapshot()


def config_text(sandbox: str, command_proposer: bool, failing_guard: bool = False) -> str:
    # The command proposer: a program that changes the target file (the ledger refuses a repeat).
    proposer = "date +%N > target.txt; echo no-op" if command_proposer else "true"
    return f"""
[run]
name = "memory"
[scope]
mutable = ["target.txt", "value.txt", "crash.txt"]
harness = ["metric.sh", "guard.sh"]
[metric]
command = "sh metric.sh"
direction = "minimize"
[budget]
max_consecutive_crashes = 1000000
[proposer]
kind = "command"
command = "{proposer}"
[sandbox]
mode = "{sandbox}"
""" + ('[[guards]]\nname = "tests"\ncommand = "sh guard.sh"\n' if failing_guard else "")


def log_usage(logs: Path) -> tuple[int, int, int]:
    """(files, empty ones, bytes) under the run's log folders (the baseline's and calibration's too)."""
    files = empty = size = 0
    for path in logs.rglob("*"):
        if path.is_file():
            files += 1
            length = path.stat().st_size
            empty += length == 0
            size += length
    return files, empty, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="experiments in the run")
    parser.add_argument("--at", default="100,500,1000", help="experiment ids to print RSS at (comma-separated)")
    parser.add_argument("--keep-every", type=int, default=0, help="every K-th proposal is a keep (0: never)")
    parser.add_argument("--crash-every", type=int, default=0, help="every K-th proposal crashes (0: never)")
    parser.add_argument("--failing-guard", action="store_true", help="a guard that fails every would-be keep (with --keep-every)")
    parser.add_argument("--command-proposer", action="store_true", help="the command proposer (a program) instead of the in-process one")
    parser.add_argument("--sandbox", default="off", help="[sandbox] mode (off: the harness's own cost)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top growth between the first and last checkpoints")
    args = parser.parse_args()
    at = sorted(i for i in (int(x) for x in args.at.split(",")) if i <= args.n)
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, Python {platform.python_version()}, {git}")
    if args.trace:
        tracemalloc.start(12)
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        watch = Checkpoints(at, args.trace)
        proposer = None if args.command_proposer else Scripted(args.keep_every, args.crash_every)
        config = parse_config(config_text(args.sandbox, args.command_proposer, args.failing_guard))
        Loop(repo, config, proposer=proposer, iterations=args.n, observer=watch).run()
        files, empty, size = log_usage(repo / ".ratchet" / "runs" / "memory" / "logs")
        ledger_kb = sum(p.stat().st_size for p in (repo / ".ratchet").glob("ledger.sqlite*")) / 1024
    first = at[0] if at else None
    kind = "command proposer" if args.command_proposer else f"keep every {args.keep_every or '-'}, crash every {args.crash_every or '-'}"
    guard = ", a failing guard" if args.failing_guard else ""
    print(f"{args.n} experiments ({kind}{guard}, sandbox {args.sandbox})")
    for exp_id in at:
        growth = f"{(watch.rss[exp_id] / watch.rss[first] - 1):+.1%}" if first is not None and exp_id != first else ""
        print(f"  RSS at experiment {exp_id:>5}: {watch.rss[exp_id] / 1024:7.1f} MiB  {growth:>7}   ({watch.fds[exp_id]} open files, {watch.times[exp_id]:.0f} s)")
    if len(at) >= 2:
        # Whether an experiment costs more as the run grows (reads of the whole history would).
        spans = [f"{a}-{b}: {(watch.times[b] - watch.times[a]) / (b - a) * 1000:.1f}" for a, b in zip(at, at[1:])]
        print(f"  ms per experiment, from experiment to experiment: {', '.join(spans)}")
        per = (watch.rss[at[-1]] - watch.rss[at[0]]) / (at[-1] - at[0])
        print(f"  RSS growth: {per:.1f} KB per experiment from experiment {at[0]} to {at[-1]}")
    print(f"  logs: {files / args.n:.2f} files per experiment ({empty / args.n:.2f} empty), {size / args.n / 1024:.1f} KB per experiment"
          f" ({files} files, {size / 1024:.0f} KB in all); the ledger {ledger_kb / args.n:.1f} KB per experiment")
    if args.trace and len(at) >= 2:
        print("(tracing: the RSS above includes tracemalloc's own bookkeeping)")
        print(f"\ntracemalloc, top growth from experiment {at[0]} to {at[-1]}:")
        stats = watch.snapshots[at[-1]].compare_to(watch.snapshots[at[0]], "traceback")
        print(f"  in all: {sum(stat.size_diff for stat in stats) / 1024 / (at[-1] - at[0]):+.2f} KiB per experiment of Python objects")
        for stat in stats[:8]:
            print(f"  {stat.size_diff / 1024:+8.1f} KiB {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format()[-6:]:
                print("     " + line)


if __name__ == "__main__":
    sys.exit(main())
