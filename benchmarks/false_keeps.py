"""False-keep rate and power of the verdict policies, measured with real ratchet loops.

A synthetic target: its metric command prints `100 - effect + noise`, where `effect` is read
from the candidate's `effect.txt` and the noise is Gaussian (fresh per measurement, from the OS).
Each measurement's sd is sigma/sqrt(2), so that one paired comparison (candidate minus
champion) has sd sigma = 1: effects below are in units of that sigma. min_effect = 0, so null
candidates (true effect 0) sit exactly on the boundary of the test: the least favourable case.

Every proposal moves `effect` by a fixed delta from the champion's (plus a nonce so that each
proposal is a change); the loop measures it with the policy under test, real git and real
processes. Run:  python benchmarks/false_keeps.py [--null 200] [--per-effect 100]

The run-level table (--run-level): whole runs of a mixed proposer, most of whose candidates change
nothing: 70% null, 15% harmful at -1 sigma, 15% real at +1 or +2 sigma (half each); per policy
the share of keeps that are not real improvements (FDP), the share of real candidates kept
(power), the true gain per 100 candidates (in sigma) and measurements per candidate.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ratchet import Ledger, Loop, Proposal, ProposalContext, Proposer, Verdict
from ratchet.config import parse_config
from ratchet.report.terminal import Display
from _common import commit_all

SD_SINGLE = 1 / math.sqrt(2)

METRIC = f"""\
import random
effect = float(open("effect.txt").readline())
print(100 - effect + random.SystemRandom().gauss(0, {SD_SINGLE!r}))
"""

MODES = {
    "sequential": 'mode = "sequential"\nalpha = 0.05\nmax_pairs = 10',
    "single": 'mode = "single"',
    "repeat n=5": 'mode = "repeat"\nrepeats = 5',
    "auto": "error_control = \"candidate\"",  # the new default's test, per candidate at alpha 0.05
}

# The run-level table's policies: the [verdict] lines of each (min_effect, calibration, confirmation: see run_config).
RUN_POLICIES = {
    # The original loop's rule: one measurement, kept when better than the champion's stored score.
    "keep-if-better": ('mode = "single"', "0", 0),
    # Today's single as `ratchet init` wrote it: min_effect 1% (about 1 sigma here).
    "single 1%": ('mode = "single"', '"1%"', 0),
    "sequential": ('mode = "sequential"\nalpha = 0.05\nmax_pairs = 10', "0", 0),
    # The new default: nothing but min_effect set; the A/A check at the start is paid for.
    "auto (default)": ("", "0", 10),
}
MIX = ((0.70, 0.0), (0.15, -1.0), (0.075, 1.0), (0.075, 2.0))


class Shift(Proposer):
    kind = "shift"

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.nonce = 0

    def propose(self, context: ProposalContext) -> Proposal:
        champion = float((context.worktree / "effect.txt").read_text().splitlines()[0])
        self.nonce += 1
        text = f"{champion + self.delta}\n# proposal {self.nonce}\n"
        return Proposal(hypothesis=f"effect +{self.delta}", edits={"effect.txt": text})


class Mixed(Proposer):
    """The run-level table's proposer: each proposal's true effect drawn from MIX (seeded)."""

    kind = "mixed"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.nonce = 0
        self.effects: dict[str, float] = {}

    def propose(self, context: ProposalContext) -> Proposal:
        champion = float((context.worktree / "effect.txt").read_text().splitlines()[0])
        u, delta = self.rng.random(), 0.0
        for share, effect in MIX:
            if u < share:
                delta = effect
                break
            u -= share
        self.nonce += 1
        self.effects[f"proposal {self.nonce}"] = delta
        return Proposal(hypothesis=f"proposal {self.nonce}", edits={"effect.txt": f"{champion + delta}\n# proposal {self.nonce}\n"})


def run_config(verdict: str, min_effect: str, calibrate: int) -> str:
    return f"""
[run]
name = "bench"
[scope]
mutable = ["effect.txt"]
harness = ["metric.py"]
[metric]
command = "{sys.executable} -S -E metric.py"
direction = "minimize"
[verdict]
{verdict}
min_effect = {min_effect}
calibrate_pairs = {calibrate}
confirm_pairs = 0
[budget]
max_consecutive_crashes = 1000
[proposer]
kind = "command"
command = "true"
[sandbox]
mode = "off"
"""


def run_level(policy: str, runs: int, candidates: int, workdir: Path) -> dict[str, float]:
    """FDP, power, true gain per 100 candidates and measurements per candidate (A/A included), over ``runs`` runs."""
    fdp, power, gain, per_candidate = [], [], [], []
    for i in range(runs):
        repo = make_repo(workdir / f"run-{policy.split()[0]}-{i}")
        proposer = Mixed(seed=1000 + i)  # the same candidates for every policy
        quiet = Display(Console(file=open(os.devnull, "w")))
        Loop(repo, parse_config(run_config(*RUN_POLICIES[policy])), proposer=proposer, iterations=candidates, observer=quiet).run()
        ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
        experiments = [e for e in ledger.experiments("bench") if e.verdict is not Verdict.BASELINE]
        kept = [proposer.effects[e.hypothesis] for e in experiments if e.verdict is Verdict.KEEP]
        real = [proposer.effects[e.hypothesis] for e in experiments if proposer.effects[e.hypothesis] > 0]
        fdp.append(sum(effect <= 0 for effect in kept) / max(len(kept), 1))
        power.append(sum(effect > 0 for effect in kept) / max(len(real), 1))
        gain.append(sum(kept) * 100 / len(experiments))
        calibration = sum(len(c["samples"][0]) + len(c["samples"][1]) for c in ledger.events("bench", "calibration"))
        measured = sum(sum(e.extra.get("measurements", {}).values()) for e in experiments)
        per_candidate.append((measured + calibration) / len(experiments))
    return {"fdp": statistics.fmean(fdp), "power": statistics.fmean(power), "gain": statistics.fmean(gain), "measurements": statistics.fmean(per_candidate)}


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "effect.txt").write_text("0\n")
    (root / "metric.py").write_text(METRIC)
    return commit_all(root)


def measure(mode: str, delta: float, candidates: int, workdir: Path, runs: int) -> tuple[float, float]:
    """Fraction of candidates kept, and mean measurements (both sides) per candidate, over
    ``runs`` independent runs: a policy that trusts a recorded score depends on how lucky
    that one baseline draw was, so one run alone would say more about the draw than the policy."""
    kept: list[float] = []
    samples: list[float] = []
    for i in range(runs):
        k, m = measure_one(mode, delta, candidates // runs, workdir / f"{mode.split()[0]}-{delta}-{i}")
        kept.append(k)
        samples.append(m)
    return statistics.fmean(kept), statistics.fmean(samples)


def measure_one(mode: str, delta: float, candidates: int, folder: Path) -> tuple[float, float]:
    repo = make_repo(folder)
    # This measures statistics, not containment: run_config has no sandbox start-up per measurement.
    config = parse_config(run_config(MODES[mode], "0", 0))
    quiet = Display(Console(file=open(os.devnull, "w")))
    Loop(repo, config, proposer=Shift(delta), iterations=candidates, observer=quiet).run()
    experiments = [e for e in Ledger(repo / ".ratchet" / "ledger.sqlite").experiments("bench") if e.verdict is not Verdict.BASELINE]
    kept = sum(e.verdict is Verdict.KEEP for e in experiments) / len(experiments)
    samples = statistics.fmean(sum(e.extra.get("measurements", {}).values()) for e in experiments)
    return kept, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", type=int, default=200, help="null candidates per policy")
    parser.add_argument("--per-effect", type=int, default=100, help="candidates per true effect per policy")
    parser.add_argument("--runs", type=int, default=10, help="independent runs the candidates are spread over")
    parser.add_argument("--policies", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument("--run-level", action="store_true", help="the run-level table instead of the per-candidate one")
    parser.add_argument("--candidates", type=int, default=100, help="run-level: candidates per run")
    parser.add_argument("--run-policies", default=",".join(RUN_POLICIES), help="run-level: subset of: " + ", ".join(RUN_POLICIES))
    args = parser.parse_args()
    started = time.monotonic()
    if args.run_level:
        print(f"run level: {args.runs} runs of {args.candidates} candidates each; mix: 70% null, 15% at -1σ, 7.5% at +1σ, 7.5% at +2σ\n")
        print(f"{'policy':<16} {'FDP':>6} {'power':>6} {'true gain/100 (σ)':>18} {'meas./cand.':>12}")
        with tempfile.TemporaryDirectory() as tmp:
            for policy in args.run_policies.split(","):
                r = run_level(policy, args.runs, args.candidates, Path(tmp))
                print(f"{policy:<16} {r['fdp']:>6.1%} {r['power']:>6.1%} {r['gain']:>18.1f} {r['measurements']:>12.1f}", flush=True)
        print(f"\n(measurements count both sides and the A/A check.) {time.monotonic() - started:.0f}s")
        print("goal for auto: FDP <= 10%, power >= 70%, <= 12 measurements per candidate, true gain >= 1.8x keep-if-better's")
        return
    effects = (0.5, 1.0, 2.0)
    print(f"null candidates: {args.null} per policy; {args.per_effect} per effect; spread over {args.runs} runs each; "
          "sigma = sd of one paired difference\n")
    header = f"{'policy':<12} {'false keeps':>11} {'keep @0.5σ':>11} {'keep @1σ':>9} {'keep @2σ':>9} {'meas./cand. (null)':>19} {'meas./cand. (1σ)':>17}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.policies.split(","):
            null_keep, null_samples = measure(mode, 0.0, args.null, Path(tmp), args.runs)
            powers = {}
            samples_1 = 0.0
            for effect in effects:
                powers[effect], samples = measure(mode, effect, args.per_effect, Path(tmp), args.runs)
                if effect == 1.0:
                    samples_1 = samples
            print(f"{mode:<12} {null_keep:>11.1%} {powers[0.5]:>11.1%} {powers[1.0]:>9.1%} {powers[2.0]:>9.1%} "
                  f"{null_samples:>19.1f} {samples_1:>17.1f}", flush=True)
    print(f"\n(measurements count both sides: a sequential pair is 2.) {time.monotonic() - started:.0f}s")
    print("goal: sequential false keeps <= 5%, keep >= 75% at 1σ, mean pairs <= 6")


if __name__ == "__main__":
    main()
