"""Measurement noise with N workers in flight vs 1: what concurrent benchmarks on one machine do to a pair.

The metric is its own run time: `bench/metric.py` (in the harness) runs a fixed Python busy loop,
sized at the start to take about ``--seconds`` (0.2 s) on this machine with nothing else running,
and prints `metric: <seconds>` (wall clock), so any contention for the cores shows in the number.
The proposer writes a fresh comment into `note.txt`, the one scope file, which the metric never
reads: an A/A set-up, every comparison a null comparison, every keep a false keep.

Per N (``--workers 1,2,4``) and round, a fresh git repository and one real
`Loop(repo, config, workers=N)` run of ``--experiments`` experiments after the baseline, with
`[verdict] mode = "sequential"` (interleaved candidate/champion pairs, both sides measured by the
same worker, in random order within the pair; paired t-test after each pair from 3 to
``max_pairs``, futility stop at a mean difference <= min_effect = 0), `deterministic = "no"`,
no A/A calibration, no confirmation race. The sandbox is the default (bubblewrap where it works;
its start-up is outside the number, which the loop times itself): with `--sandbox off` and N > 1
one worker's leftover-process scan kills the other workers' metric processes (their experiments
crash; counted as "failed" below). Rounds
alternate the order of N (1, 2, 4 then 4, 2, 1, ...), so a drift in the machine's load hits every N.

From the ledger, each experiment's `candidate_samples` and `champion_samples` (Judgement.to_json),
per N pooled over experiments:
- rel sd single: the pooled within-experiment sd of one measurement (candidate samples around
  their mean, champion samples around theirs) over the median metric;
- rel sd diff: the pooled within-experiment sd of the paired differences (candidate - champion),
  the quantity the sequential test uses, over the median metric;
- pairing: sd diff / (sqrt 2 x sd single); 1 = the pair's two sides as noisy as independent
  draws, below 1 = the pair shares the contention and the difference cancels part of it;
- robust: the same two, from 1.4826 x the median absolute deviation of the pooled residuals
  (each sample from its group's median, each difference from its experiment's median difference):
  a shared machine's bursts (other people's work) make fat tails, which the sd weighs heavily
  (groups of 3 leave one zero residual each: biased low, alike for every N);
- loop est.: the run's own noise estimate (`extra["noise_estimate"]["sd_single"]` of its last
  experiment: pooled champion groups) over the median, mean over rounds;
- keeps: null candidates kept (false keeps; alpha 0.05 per candidate).

    python benchmarks/worker_noise.py [--workers 1,2,4] [--experiments 8] [--rounds 2] [--seconds 0.2]
        [--max-pairs 10] [--cpus-per-experiment 0] [--sandbox auto|required|off]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from ratchet import Ledger, Loop, Proposal, ProposalContext, Proposer, Verdict
from ratchet.config import parse_config
from ratchet.report.terminal import Display
from _common import commit_all, load

METRIC_PY = """\
import time
start = time.perf_counter()
x = 0
for i in range({iterations}):
    x += i * i
print(f"metric: {{time.perf_counter() - start!r}}")
"""

PROBE_ITERATIONS = 2_000_000


class Note(Proposer):
    """Rewrites note.txt with a fresh comment: a change in scope that changes nothing measured."""

    kind = "note"

    def __init__(self) -> None:
        self.nonce = 0

    def propose(self, context: ProposalContext) -> Proposal:
        self.nonce += 1
        return Proposal(hypothesis=f"note {self.nonce}", edits={"note.txt": f"# proposal {self.nonce}\n"})


def loop_iterations(seconds: float) -> int:
    """Busy-loop iterations that take about ``seconds`` here: the fastest of three probes, scaled."""
    probe = METRIC_PY.format(iterations=PROBE_ITERATIONS)
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-S", "-E", "-c", probe], capture_output=True, text=True, check=True).stdout
        times.append(float(out.split(":")[1]))
    return max(1000, round(PROBE_ITERATIONS * seconds / min(times)))


def make_repo(root: Path, iterations: int) -> Path:
    root.mkdir()
    (root / "note.txt").write_text("# baseline\n")
    (root / "bench").mkdir()
    (root / "bench" / "metric.py").write_text(METRIC_PY.format(iterations=iterations))
    return commit_all(root)


def config_text(workers: int, max_pairs: int, cpus_per_experiment: int, sandbox: str) -> str:
    return f"""
[run]
name = "bench"
workers = {workers}
[scope]
mutable = ["note.txt"]
harness = ["bench/**"]
[metric]
command = "{sys.executable} -S -E bench/metric.py"
direction = "minimize"
regex = 'metric: ([0-9.e-]+)'
[verdict]
mode = "sequential"
alpha = 0.05
max_pairs = {max_pairs}
min_effect = 0
deterministic = "no"
calibrate_pairs = 0
recalibrate_every = 0
confirm_pairs = 0
[budget]
max_consecutive_crashes = 1000000
[proposer]
kind = "command"
command = "true"
[executor]
kind = "local"
cpus_per_experiment = {cpus_per_experiment}
[sandbox]
mode = "{sandbox}"
"""


@dataclass
class Pooled:
    """Within-experiment sums of squares and their degrees of freedom, over the experiments of one N."""

    experiments: int = 0
    samples: list[float] = field(default_factory=list)
    ss_single: float = 0.0
    df_single: int = 0
    ss_diff: float = 0.0
    df_diff: int = 0
    keeps: int = 0
    failed: int = 0
    residuals_single: list[float] = field(default_factory=list)
    residuals_diff: list[float] = field(default_factory=list)
    loop_estimates: list[float] = field(default_factory=list)  # the run's own sd_single, one per round
    seconds: float = 0.0
    loads: list[float] = field(default_factory=list)  # 1-min load average at the end of each round

    def add_group(self, values: list[float]) -> None:
        if len(values) >= 2:
            mean = statistics.fmean(values)
            self.ss_single += sum((v - mean) ** 2 for v in values)
            self.df_single += len(values) - 1
            middle = statistics.median(values)
            self.residuals_single += [v - middle for v in values]

    def add_diffs(self, diffs: list[float]) -> None:
        if len(diffs) >= 2:
            mean = statistics.fmean(diffs)
            self.ss_diff += sum((d - mean) ** 2 for d in diffs)
            self.df_diff += len(diffs) - 1
            middle = statistics.median(diffs)
            self.residuals_diff += [d - middle for d in diffs]

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @staticmethod
    def mad_sd(residuals: list[float]) -> float:
        return 1.4826 * statistics.median(abs(r) for r in residuals) if residuals else math.nan

    @property
    def sd_single(self) -> float:
        return math.sqrt(self.ss_single / self.df_single) if self.df_single else math.nan

    @property
    def sd_diff(self) -> float:
        return math.sqrt(self.ss_diff / self.df_diff) if self.df_diff else math.nan


def one_run(folder: Path, iterations: int, workers: int, args: argparse.Namespace, into: Pooled) -> None:
    repo = make_repo(folder, iterations)
    quiet = Display(Console(file=open(os.devnull, "w")))
    started = time.monotonic()
    config = parse_config(config_text(workers, args.max_pairs, args.cpus_per_experiment, args.sandbox))
    Loop(repo, config, proposer=Note(), iterations=args.experiments, observer=quiet, workers=workers).run()
    into.seconds += time.monotonic() - started
    into.loads.append(os.getloadavg()[0])
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    try:
        rows = [e for e in ledger.experiments("bench") if e.verdict is not Verdict.BASELINE]
    finally:
        ledger.close()
    last_estimate: float | None = None
    for e in rows:
        cand = [float(v) for v in e.extra.get("candidate_samples", [])]
        champ = [float(v) for v in e.extra.get("champion_samples", [])]
        if e.verdict not in (Verdict.KEEP, Verdict.DISCARD) or not cand or not champ:
            into.failed += 1
            continue
        into.experiments += 1
        into.keeps += e.verdict is Verdict.KEEP
        into.samples += cand + champ
        into.add_group(cand)
        into.add_group(champ)
        into.add_diffs([c - h for c, h in zip(cand, champ)])
        if (estimate := e.extra.get("noise_estimate")) and estimate.get("sd_single") is not None:
            last_estimate = float(estimate["sd_single"])
    if last_estimate is not None:
        into.loop_estimates.append(last_estimate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="comma-separated N to compare")
    parser.add_argument("--experiments", type=int, default=8, help="experiments per run (after the baseline)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per N; the order of N alternates")
    parser.add_argument("--seconds", type=float, default=0.2, help="the busy loop's length on an idle core")
    parser.add_argument("--max-pairs", type=int, default=10, help="[verdict] max_pairs")
    parser.add_argument("--cpus-per-experiment", type=int, default=0, help="[executor] cpus_per_experiment (0: no pinning)")
    parser.add_argument("--sandbox", choices=("auto", "required", "off"), default="auto", help="[sandbox] mode")
    args = parser.parse_args()
    ns = [int(n) for n in args.workers.split(",")]
    started = time.monotonic()
    before = load()
    iterations = loop_iterations(args.seconds)
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"before: {before}")
    print(f"metric: a {iterations:,}-iteration busy loop (~{args.seconds} s alone), its wall time; A/A proposer (note.txt only)")
    print(f"verdict: sequential, alpha 0.05, max_pairs {args.max_pairs}, min_effect 0; {args.experiments} experiments per run, "
          f"{args.rounds} rounds per N, order alternating; cpus_per_experiment {args.cpus_per_experiment}; sandbox {args.sandbox}\n")
    pooled = {n: Pooled() for n in ns}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in ns if r % 2 == 0 else ns[::-1]:
                one_run(Path(tmp) / f"n{n}-r{r}", iterations, n, args, pooled[n])
                print(f"  round {r + 1}, N = {n}: done ({pooled[n].loads[-1]:.2f} load)", file=sys.stderr, flush=True)
    header = (f"{'N':>3} {'experiments':>11} {'samples':>8} {'median s':>9} {'rel sd single':>14} {'rel sd diff':>12} "
              f"{'pairing':>8} {'robust single':>14} {'robust diff':>12} {'loop est.':>10} {'keeps':>6} {'run s':>6} {'load after':>11}")
    print(header)
    for n in ns:
        p = pooled[n]
        m = p.median
        estimate = statistics.fmean(p.loop_estimates) / m if p.loop_estimates else math.nan
        pairing = p.sd_diff / (math.sqrt(2) * p.sd_single)
        failed = f" ({p.failed} failed)" if p.failed else ""
        print(f"{n:>3} {p.experiments:>11} {len(p.samples):>8} {m:>9.4f} {p.sd_single / m:>14.2%} {p.sd_diff / m:>12.2%} "
              f"{pairing:>8.2f} {p.mad_sd(p.residuals_single) / m:>14.2%} {p.mad_sd(p.residuals_diff) / m:>12.2%} {estimate:>10.2%} {p.keeps:>6} {p.seconds:>6.0f} {statistics.fmean(p.loads):>11.2f}{failed}")
    print(f"\nafter: {load()}; {time.monotonic() - started:.0f}s in all")
    lo, hi = pooled[ns[0]], pooled[ns[-1]]

    def both(p: Pooled, sd: float, residuals: list[float]) -> str:
        return f"{sd / p.median:.1%} (robust {p.mad_sd(residuals) / p.median:.1%})"

    print(f"pairs measured by one worker keep the paired sd at {both(hi, hi.sd_diff, hi.residuals_diff)} of the metric with "
          f"{ns[-1]} workers vs {both(lo, lo.sd_diff, lo.residuals_diff)} with {ns[0]}, while the single-measurement sd goes from "
          f"{both(lo, lo.sd_single, lo.residuals_single)} to {both(hi, hi.sd_single, hi.residuals_single)} and the median from "
          f"{lo.median:.3f} s to {hi.median:.3f} s (x{hi.median / lo.median:.2f}); false keeps {lo.keeps}/{lo.experiments} "
          f"vs {hi.keeps}/{hi.experiments}")


if __name__ == "__main__":
    main()
