"""Measurements outside the loop: ``ratchet calibrate`` (noise, power planning) and ``ratchet ablate``.

Both measure real checkouts with the run's harness, never stored scores.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ratchet.config import Config, Effect
from ratchet.executors import Executor, LocalExecutor
from ratchet.executors.sampler import (
    MeasurementFailed,
    PristineHarness,
    Sampler,
    harness_paths,
)
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import Ledger, RunInfo
from ratchet.state import STATE_DIR
from ratchet.verdict import stats
from ratchet.verdict.effect import log_scale_for, recommended_min_effect, setting_on_scale, threshold_on_scale
from ratchet.verdict.policies import SequentialPairs
from ratchet.workspace.git import BRANCH_PREFIX, GitError, git, run_champion
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import reference_checkout


class AnalysisError(Exception):
    """One line for the user."""


def _sampler(
    config: Config, repo_root: Path, base_commit: str, candidate: Path, champion: Path, log_dir: Path, executor: Executor
) -> Sampler:
    pristine = None
    if config.metric.trusted_scoring:
        paths = harness_paths(repo_root, base_commit, Globs(config.scope.harness).matches)
        pristine = PristineHarness(repo_root, base_commit, paths, log_dir / "pristine-harness")
    return Sampler(
        config=config, executor=executor, candidate_dir=candidate, champion_dir=lambda: champion, log_dir=log_dir,
        stored_champion=float("nan"), should_abandon=lambda: False, after_candidate=lambda: None, pristine=pristine,
    )  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    noise: stats.Noise
    commit: str
    recommended_min_effect: float  # on the differences' scale (log-ratio or metric units)
    pairs_for_effect: int | None  # pairs a fixed test needs for the asked effect and power
    effect: float | None

    @property
    def min_effect_setting(self) -> str:
        """The recommendation as ``ratchet.toml`` reads it: ``"19%"`` on a log scale (the
        differences are log-ratios, so the percentage is their exponential), else a number in
        the metric's units. Rounded up to two significant digits: the noise is only estimated."""
        setting = setting_on_scale(self.recommended_min_effect, self.noise.log_scale)
        return f'"{_round_up(setting.value)}%"' if setting.relative else _round_up(setting.value)


    def lines(self, config: Config, pairs: int, power: float, effect: str | None) -> list[str]:
        """The human report of ``ratchet calibrate``: the noise, the recommended min_effect and,
        for an ``effect`` asked (as the user wrote it), the pairs it needs."""
        noise = self.noise
        if noise.deterministic:
            return [f"The metric is deterministic (all {2 * pairs} measurements gave {noise.mean:.6g}): one measurement decides; any min_effect works."]
        if noise.log_scale:  # log-ratios read as percentages of the metric
            out = [f"noise: one measurement sd {math.expm1(noise.sd_single):.2%} of the metric; one paired comparison sd {math.expm1(noise.sd_pair):.2%}"]
        else:
            relative = f" ({noise.relative:.2%} of the metric)" if noise.relative is not None else ""
            out = [f"noise: one measurement sd {noise.sd_single:.4g} {config.metric.name}{relative}; one paired comparison sd {noise.sd_pair:.4g}"]
        v = config.verdict
        # In the form [verdict] min_effect takes: a log-ratio is no setting anyone can write.
        out.append(
            f"recommended: min_effect = {self.min_effect_setting} (under [verdict]) — the smallest effect `sequential` "
            f"with max_pairs = {v.max_pairs} keeps with probability {power:.0%} at alpha = {v.alpha}"
        )
        if self.effect is not None:
            needed = self.pairs_for_effect
            if needed is None:
                shown = "more than 50 pairs (raise the effect or lower the noise)"
            elif needed > v.max_pairs:
                shown = f"{needed} pairs; this run stops at max_pairs = {v.max_pairs}: raise it to {needed} to resolve it"
            else:
                shown = f"{needed} pairs (within this run's max_pairs = {v.max_pairs})"
            out.append(f"to detect {effect} with power {power:.0%}: {shown}")
        return out


@dataclass(frozen=True)
class CalibrationTarget:
    """What ``ratchet calibrate`` measures against itself: the run's champion, else HEAD."""

    commit: str
    head: str  # the user's HEAD: the base the harness is taken from
    label: str  # the run branch, or "HEAD" when the champion is HEAD


def calibration_target(repo_root: Path, run: str) -> CalibrationTarget:
    champion = run_champion(repo_root, run)
    head = git(repo_root, "rev-parse", "HEAD").strip()
    return CalibrationTarget(champion.commit, head, BRANCH_PREFIX + run if champion.commit != head else "HEAD")


def _round_up(value: float, digits: int = 2) -> str:
    if value <= 0 or not math.isfinite(value):
        return "0"
    exponent = math.floor(math.log10(value)) - (digits - 1)
    step = 10.0**exponent
    rounded = math.ceil(round(value / step, 9)) * step
    return f"{rounded:.{max(0, -exponent)}f}"


def calibrate(
    repo_root: Path, config: Config, commit: str, base_commit: str, pairs: int, power: float, effect: Effect | None,
    progress: Callable[[str], None] = lambda _: None, executor: Executor | None = None,
) -> Calibration:  # fmt: skip
    """A/A on ``commit``: ``pairs`` pairs of the same checkout measured against itself."""
    folder = repo_root / STATE_DIR / "worktrees" / "calibrate"
    reference_checkout(repo_root, folder, commit)
    log_dir = repo_root / STATE_DIR / "calibrate"
    sampler = _sampler(config, repo_root, base_commit, folder, folder, log_dir, executor or LocalExecutor.from_config(config, repo_root))
    first: list[float] = []
    second: list[float] = []
    for i in range(pairs):
        progress(f"pair {i + 1}/{pairs}")
        try:
            first.append(sampler.champion())
            second.append(sampler.champion())
        except MeasurementFailed as exc:
            raise AnalysisError(f"the metric failed on {commit[:7]}: {exc.failure.reason} (logs: {log_dir})") from None
    verdict = config.verdict
    noise = stats.estimate_noise(first, second, log_scale_for(verdict, first + second))
    recommended = recommended_min_effect(verdict, noise, power)
    wanted = None
    needed = None
    if effect is not None:
        # The effect to plan for, as a policy would read it for min_effect.
        wanted = threshold_on_scale(effect, noise.log_scale, noise.mean)
        needed = stats.pairs_needed(wanted, noise.sd_pair, verdict.alpha, power)
    return Calibration(noise, commit, recommended, needed, wanted)


@dataclass(frozen=True)
class Ablation:
    experiment: int
    commit: str
    hypothesis: str
    contributes: bool | None  # None: could not be reverted alone
    detail: str


@dataclass(frozen=True)
class AblationPlan:
    """What ``ratchet ablate`` re-measures: the run branch's tip, once without each kept commit."""

    run: str
    base_commit: str
    champion: str
    kept: list[Experiment]


def plan_ablation(repo_root: Path, ledger: Ledger, info: RunInfo) -> AblationPlan:
    kept = [e for e in ledger.experiments(info.name) if e.verdict is Verdict.KEEP and e.commit]
    if not kept:
        raise AnalysisError(f"run {info.name!r} has no kept experiment to ablate")
    return AblationPlan(info.name, info.base_commit, git(repo_root, "rev-parse", info.branch).strip(), kept)


def ablate_and_record(
    repo_root: Path, config: Config, ledger: Ledger, plan: AblationPlan, progress: Callable[[str], None] = lambda _: None
) -> list[Ablation]:
    """Leave-one-out on the plan; the results go into the ledger as an "ablation" event."""
    results = ablate(repo_root, config, plan.run, plan.base_commit, plan.champion, plan.kept, progress=progress)
    ledger.add_event(plan.run, "ablation", {"champion": plan.champion, "results": [r.__dict__ for r in results]})
    return results


def ablate(
    repo_root: Path, config: Config, run: str, base_commit: str, champion: str, kept: list[Experiment],
    progress: Callable[[str], None] = lambda _: None, executor: Executor | None = None, seed: int = 0,
) -> list[Ablation]:  # fmt: skip
    """Leave-one-out: the champion against the champion with one kept commit reverted, for each."""
    executor = executor or LocalExecutor.from_config(config, repo_root)
    worktrees = repo_root / STATE_DIR / "worktrees"
    champion_dir = reference_checkout(repo_root, worktrees / f"{run}.champion", champion)
    # Contribution test: is the champion better than the champion without the commit?
    section = config.verdict.model_copy(update={"min_effect": Effect(value=0.0, relative=False), "mode": "sequential"})
    policy = SequentialPairs(section, config.metric.direction)
    results = []
    for experiment in kept:
        assert experiment.commit is not None
        progress(f"experiment {experiment.id} ({experiment.commit[:7]})")
        folder = reference_checkout(repo_root, worktrees / f"{run}.ablate", champion)
        try:
            git(folder, "revert", "--no-commit", "--no-edit", experiment.commit)
        except GitError:
            git(folder, "reset", "--quiet", "--hard", champion)
            results.append(Ablation(experiment.id, experiment.commit, experiment.hypothesis, None, "does not revert alone (conflicts with later keeps)"))
            continue
        log_dir = repo_root / STATE_DIR / "runs" / run / "logs" / f"ablate-{experiment.id:04d}"
        sampler = _sampler(config, repo_root, base_commit, champion_dir, folder, log_dir, executor)
        try:
            judgement = policy.judge(sampler, random.Random(f"{seed}/ablate/{experiment.id}"))
        except MeasurementFailed as exc:
            results.append(Ablation(experiment.id, experiment.commit, experiment.hypothesis, None, f"measurement failed: {exc.failure.reason}"))
            continue
        contributes = judgement.decision.verdict is Verdict.KEEP
        import statistics

        with_it, without = statistics.median(judgement.candidate), statistics.median(judgement.champion)
        verdict = "worse" if contributes else "not measurably worse"
        p = "" if judgement.p_value is None else f", p={judgement.p_value:.3g}"
        detail = f"{verdict} without it: median {without:.6g} without vs {with_it:.6g} with ({len(judgement.candidate)} pairs{p})"
        results.append(Ablation(experiment.id, experiment.commit, experiment.hypothesis, contributes, detail))
    return results
