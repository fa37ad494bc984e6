"""Scale-out: experiments per minute with N workers in flight, and what concurrency costs Optuna.

Throughput. A fresh git repository per configuration; its metric (`python3 bench/metric.py`,
in the harness) sleeps 2 s and prints a number read from `params.py`, the one scope file, so
the machine's cores are not the limit: N experiments in flight wait side by side. Every
experiment is ONE measurement (`[verdict] mode = "single"`, `deterministic = "yes"`, no
calibration, no confirmation race), so the rate counts experiments, not samples. Two proposers:

- optuna: `X = 0.5  # ratchet: 0..1` in params.py; the metric prints (X - 0.3)^2.
- command: `python3 bench/propose.py` writes a fresh random X into params.py (the command
  proposer is concurrent: each call runs in its own candidate worktree).

Each configuration is one `Loop(repo, config, workers=N)` run of `--experiments-per-worker` x N
experiments after the baseline. The rate is taken from the ledger: non-baseline experiments,
first start to last end (the run's start, the baseline and the executor's start-up left out).
A keep whose champion moved while it was measured is re-applied and measured again (the
scheduler's rule): the "re-meas" column counts those (each costs one more 2 s measurement); one that no longer applies is stale.
"busy" is the experiments' summed durations over N x the span (1.00: no worker slot ever idle), which
tells a scheduler that leaves slots idle from experiments that got slower (s/exp: cores shared).
Rounds alternate the order of N (1, 2, 4, 8 then 8, 4, 2, 1, ...); a row shows the median rate
over rounds and, in parentheses, each round's. Goal: speed-up >= 0.9 N locally, >= 0.85 N on Ray.

For `--executor ray` a loopback Ray cluster is started in this process the way tests/ray_cluster.py
does (127.0.0.1 only, no token auth, no usage stats; `--ray-cpus` logical CPUs, 8 by default:
the metric sleeps), and the config names its address.

Optuna at N = 1 vs N = 4. A cheap synthetic function (Branin, minimum 0.397887, two float
parameters, instant), 32 experiments per run, seeds 0..4 (`--optuna-seeds`): per seed the best
value measured and the run's final champion at N = 1 and at N = 4 (and N = 4's stale would-be
keeps, which Optuna is told as FAIL), their means +- sd, and the difference of means against its
standard error. TPE's constant liar should keep N = 4 within noise of N = 1 per experiment.

    python benchmarks/throughput.py [--workers 1,2,4,8] [--executor local|ray|both]
        [--proposer optuna|command|both] [--experiments-per-worker 4] [--rounds 2]
        [--optuna-seeds 5] [--optuna-experiments 32] [--skip-throughput] [--skip-optuna]
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ratchet import Ledger, Loop, Verdict, __version__
from ratchet.config import parse_config
from _common import commit_all, load

SLEEP_S = 2.0

METRIC_PY = f"""\
import re, time
time.sleep({SLEEP_S!r})
x = float(re.search(r"X = ([-0-9.e]+)", open("params.py").read()).group(1))
print((x - 0.3) ** 2)
"""

PROPOSE_PY = """\
import random
open("params.py", "w").write(f"X = {random.SystemRandom().random()!r}  # ratchet: 0..1\\n")
"""

BRANIN_PY = """\
import math, re
text = open("params.py").read()
x, y = (float(re.search(rf"{name} = ([-0-9.e]+)", text).group(1)) for name in ("X", "Y"))
b, c, r, s, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
print((y - b * x * x + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s)
"""
BRANIN_MIN = 0.397887


def make_repo(root: Path, params: str, metric: str) -> Path:
    root.mkdir()
    (root / "params.py").write_text(params)
    (root / "bench").mkdir()
    (root / "bench" / "metric.py").write_text(metric)
    (root / "bench" / "propose.py").write_text(PROPOSE_PY)
    return commit_all(root)


def config_text(proposer: str, executor: str, address: str | None, seed: int = 0) -> str:
    section = f'kind = "optuna"\nseed = {seed}' if proposer == "optuna" else 'kind = "command"\ncommand = "python3 bench/propose.py"'
    where = f'kind = "ray"\naddress = "{address}"' if executor == "ray" else 'kind = "local"'
    return f"""
[run]
name = "bench"
[scope]
mutable = ["params.py"]
harness = ["bench/**"]
[metric]
command = "python3 bench/metric.py"
direction = "minimize"
[verdict]
mode = "single"
deterministic = "yes"
calibrate_pairs = 0
recalibrate_every = 0
confirm_pairs = 0
[budget]
max_consecutive_crashes = 1000000
[proposer]
{section}
[executor]
{where}
"""


@dataclass
class LoopPhase:
    experiments: int
    seconds: float
    mean_duration: float
    busy: float  # the experiments' summed durations over N x the span: 1.0 is no slot ever idle
    keeps: int
    remeasured: int
    failed: dict[str, int]

    @property
    def per_minute(self) -> float:
        return 60 * self.experiments / self.seconds


def loop_phase(ledger_path: Path, run: str, workers: int) -> LoopPhase:
    """The non-baseline experiments' span, first start to last end, from the ledger."""
    ledger = Ledger(ledger_path)
    try:
        rows = [e for e in ledger.experiments(run) if e.verdict is not Verdict.BASELINE]
    finally:
        ledger.close()
    ended = [e.ended for e in rows if e.ended is not None]
    if not rows or len(ended) != len(rows):
        raise SystemExit(f"the run left {len(rows) - len(ended)} of {len(rows)} experiments unfinished")
    durations = [e.duration for e in rows if e.duration is not None]
    span = max(ended) - min(e.started for e in rows)
    return LoopPhase(
        experiments=len(rows),
        seconds=span,
        mean_duration=statistics.fmean(durations),
        busy=sum(durations) / (workers * span),
        keeps=sum(e.verdict is Verdict.KEEP for e in rows),
        # A rebase that no longer applied ended the experiment as stale, unmeasured.
        remeasured=sum(len(e.extra.get("rebased") or []) - (e.verdict is Verdict.STALE) for e in rows),
        failed=dict(collections.Counter(str(e.verdict.value if e.verdict else e.state) for e in rows
                                        if e.verdict not in (Verdict.KEEP, Verdict.DISCARD))),
    )


def run_once(executor: str, proposer: str, workers: int, experiments: int, address: str | None) -> LoopPhase:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", "X = 0.5  # ratchet: 0..1\n", METRIC_PY)
        config = parse_config(config_text(proposer, executor, address))
        loop = Loop(repo, config, iterations=experiments, workers=workers)
        summary = loop.run()
        if summary.exit_code != 0:
            raise SystemExit(f"{executor}/{proposer} N={workers}: the run ended with exit code {summary.exit_code} ({summary.stop_reason})")
        return loop_phase(loop.parts.state_dir / "ledger.sqlite", config.run.name, workers)


class RayCluster:
    """A loopback cluster in this process, as tests/ray_cluster.py starts one."""

    ENV: ClassVar[dict[str, str]] = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def __init__(self, cpus: int) -> None:
        os.environ.update(self.ENV)  # before the first Ray process starts: each inherits them
        import ray
        from ray.cluster_utils import Cluster

        self.ray = ray
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": cpus, "node_ip_address": "127.0.0.1", "include_dashboard": False},
        )
        self.address: str = self.cluster.address
        ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)

    def close(self) -> None:
        self.ray.shutdown()
        self.cluster.shutdown()


def throughput(args: argparse.Namespace, executors: list[str], proposers: list[str]) -> None:
    print(f"throughput: metric sleeps {SLEEP_S:g} s, one measurement per experiment; "
          f"{args.experiments_per_worker} x N experiments per run after the baseline; {args.rounds} rounds, order of N alternated")
    print(f"before: {load()}\n")
    print(f"{'executor':<8} {'proposer':<8} {'N':>2} {'exps':>4} {'seconds':>8} {'exp/min':>8} {'speed-up':>8} {'goal':>5} "
          f"{'met':>4} {'s/exp':>6} {'busy':>5} {'keeps':>5} {'re-meas':>7}   (exp/min per round)")
    conclusions = []
    for executor in executors:
        cluster = RayCluster(args.ray_cpus) if executor == "ray" else None
        try:
            for proposer in proposers:
                phases: dict[int, list[LoopPhase]] = {n: [] for n in args.workers}
                for index in range(args.rounds):
                    for n in (args.workers if index % 2 == 0 else args.workers[::-1]):
                        address = cluster.address if cluster is not None else None
                        phases[n].append(run_once(executor, proposer, n, args.experiments_per_worker * n, address))
                base = statistics.median(p.per_minute for p in phases[args.workers[0]]) / args.workers[0]
                factor = 0.85 if executor == "ray" else 0.9
                for n in args.workers:
                    runs = phases[n]
                    rate = statistics.median(p.per_minute for p in runs)
                    speedup, goal = rate / base, factor * n
                    met = speedup >= goal
                    print(f"{executor:<8} {proposer:<8} {n:>2} {statistics.median(p.experiments for p in runs):>4.0f} "
                          f"{statistics.median(p.seconds for p in runs):>8.1f} {rate:>8.1f} {speedup:>8.2f} {goal:>5.2f} "
                          f"{'yes' if met else 'NO':>4} {statistics.median(p.mean_duration for p in runs):>6.2f} {statistics.median(p.busy for p in runs):>5.2f} "
                          f"{sum(p.keeps for p in runs) / len(runs):>5.1f} {sum(p.remeasured for p in runs) / len(runs):>7.1f}   "
                          f"({' '.join(f'{p.per_minute:.1f}' for p in runs)})", flush=True)
                    failed: collections.Counter[str] = sum((collections.Counter(p.failed) for p in runs), collections.Counter())
                    if failed:
                        print(f"{'':<18} (neither kept nor discarded, all rounds: {', '.join(f'{k} {v}' for k, v in sorted(failed.items()))})")
                top = args.workers[-1]
                top_speedup = statistics.median(p.per_minute for p in phases[top]) / base
                missed = [str(n) for n in args.workers if statistics.median(p.per_minute for p in phases[n]) / base < factor * n]
                verdict = "goal met at every N" if not missed else f"goal NOT met at N = {', '.join(missed)}"
                conclusions.append(f"{executor}/{proposer}: {verdict} ({top_speedup:.2f}x at N = {top}; goal {factor * top:.2f}x)")
        finally:
            if cluster is not None:
                cluster.close()
    print(f"after: {load()}")
    print("speed-up: the median rate at N over the median rate at N = 1 (per worker: at the first N given, divided by it); "
          "s/exp: mean experiment duration (propose + measure + decide); "
          "busy: those durations summed over N x seconds (1.00: no worker slot ever idle); keeps, re-meas (a keep re-applied on a moved champion and measured again): mean per run")
    for line in conclusions:
        print("conclusion: " + line)


# ---------------------------------------------------------------- optuna at N = 1 vs N = 4


@dataclass
class Search:
    best: float  # the lowest value measured in the run's experiments (what TPE found)
    champion: float  # the run's champion at its end (what the run kept)
    stale: int  # would-be keeps whose change no longer applied to a champion that moved meanwhile


def search(seed: int, workers: int, experiments: int) -> Search:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", "X = 2.5  # ratchet: -5..10\nY = 7.5  # ratchet: 0..15\n", BRANIN_PY)
        config = parse_config(config_text("optuna", "local", None, seed=seed))
        loop = Loop(repo, config, iterations=experiments, workers=workers)
        summary = loop.run()
        if summary.exit_code != 0 or summary.champion_metric is None:
            raise SystemExit(f"optuna seed {seed} N={workers}: exit code {summary.exit_code} ({summary.stop_reason})")
        ledger = Ledger(loop.parts.state_dir / "ledger.sqlite")
        try:
            rows = [e for e in ledger.experiments(config.run.name) if e.verdict is not Verdict.BASELINE]
        finally:
            ledger.close()
        values = [e.metric for e in rows if e.metric is not None]
        if len(values) != experiments:
            raise SystemExit(f"optuna seed {seed} N={workers}: {len(values)} of {experiments} experiments have a metric")
        return Search(min(values), summary.champion_metric, sum(e.verdict is Verdict.STALE for e in rows))


def _compare(name: str, ones: list[float], fours: list[float]) -> str:
    sd1, sd4 = (statistics.stdev(v) if len(v) > 1 else 0.0 for v in (ones, fours))
    diff = statistics.fmean(fours) - statistics.fmean(ones)
    se = math.sqrt(sd1**2 / len(ones) + sd4**2 / len(fours))
    z = diff / se if se > 0 else math.inf
    verdict = "within noise of" if abs(z) < 2 else "NOT within noise of"
    return f"{name}: N = 4 minus N = 1 {diff:+.4f} (standard error {se:.4f}, {z:+.2f} SE): {verdict} N = 1 (|difference| < 2 SE)"


def optuna_quality(args: argparse.Namespace) -> None:
    print(f"\noptuna, Branin (minimum {BRANIN_MIN}), {args.optuna_experiments} experiments per run, TPE "
          f"(5 start-up trials, constant liar), seeds 0..{args.optuna_seeds - 1}, N = 1 then N = 4 per seed")
    print(f"before: {load()}\n")
    print(f"{'seed':>4} {'best N=1':>10} {'best N=4':>10} {'champ N=1':>10} {'champ N=4':>10} {'stale N=4':>10}")
    ones, fours = [], []
    for seed in range(args.optuna_seeds):
        ones.append(search(seed, 1, args.optuna_experiments))
        fours.append(search(seed, 4, args.optuna_experiments))
        one, four = ones[-1], fours[-1]
        print(f"{seed:>4} {one.best:>10.4f} {four.best:>10.4f} {one.champion:>10.4f} {four.champion:>10.4f} {four.stale:>10}", flush=True)
    for label, pick in (("mean", statistics.fmean), ("sd", statistics.stdev)):
        if len(ones) > 1 or label == "mean":
            cells = [pick([getattr(r, f) for r in runs]) for f in ("best", "champion") for runs in (ones, fours)]
            stale = pick([float(r.stale) for r in fours])
            print(f"{label:>4} " + " ".join(f"{c:>10.4f}" for c in cells) + f" {stale:>10.1f}")
    print(f"after: {load()}")
    print("best: the lowest value measured in the run's experiments; champ: the run's champion at its end; stale: would-be "
          "keeps whose champion moved while they were measured and whose change no longer applied (told to Optuna as FAIL)")
    print("conclusion: " + _compare("best", [r.best for r in ones], [r.best for r in fours]))
    print("conclusion: " + _compare("champion", [r.champion for r in ones], [r.champion for r in fours]))


def machine() -> str:
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{git}, ratchet {__version__}, {time.strftime('%Y-%m-%d %H:%M')}")


def _choices(value: str, allowed: tuple[str, ...]) -> list[str]:
    return list(allowed[:2]) if value == "both" else [value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8", help="the N to time, comma-separated (the first is the reference)")
    parser.add_argument("--executor", choices=("local", "ray", "both"), default="local")
    parser.add_argument("--proposer", choices=("optuna", "command", "both"), default="both")
    parser.add_argument("--experiments-per-worker", type=int, default=4, help="experiments per run: this many times N")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every N (order alternated)")
    parser.add_argument("--ray-cpus", type=int, default=8, help="logical CPUs of the loopback Ray cluster's head")
    parser.add_argument("--optuna-seeds", type=int, default=5)
    parser.add_argument("--optuna-experiments", type=int, default=32)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-optuna", action="store_true")
    args = parser.parse_args()
    args.workers = [int(n) for n in args.workers.split(",")]
    print(machine())
    versions = []
    for name in ("optuna", "ray"):  # not imported: Ray reads its environment (loopback only) when first imported
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    print(", ".join(versions))
    if not args.skip_throughput:
        throughput(args, _choices(args.executor, ("local", "ray")), _choices(args.proposer, ("optuna", "command")))
    if not args.skip_optuna:
        optuna_quality(args)


if __name__ == "__main__":
    sys.exit(main())
