"""The measuring step: a sampler for the candidate and its champion, the guards and the holdout
as jobs for the executor, and the verdict policy's judgement of the samples.

Built once per run: it keeps the champion's clean checkout (made on first use) and the pristine
harness between experiments.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ratchet.events import RunObserver
from ratchet.executors import Executor, Job, JobSource
from ratchet.executors.jobs import guard_job, holdout_job
from ratchet.executors.sampler import (
    Failure,
    MeasurementFailed,
    PristineHarness,
    Sampler,
    harness_paths,
)
from ratchet.experiment import Experiment, GuardResult, Verdict
from ratchet.loop.parts import Parts
from ratchet.loop.state import Interrupts, RunState
from ratchet.measure.parse import MetricParseError, parse_number
from ratchet.verdict import (
    Decision,
    Judgement,
    evaluate_guard,
    guarded,
    holdout_regressed,
)
from ratchet.verdict.error_control import DEFAULT_HORIZON, Past
from ratchet.workspace.worktree import Leftovers, Workspace, reference_checkout


class _Announced:
    """The sampler as the verdict policy draws from it, each value announced as it comes."""

    def __init__(self, sampler: Sampler, observer: RunObserver, experiment: Experiment) -> None:
        self._sampler, self._observer, self._experiment = sampler, observer, experiment

    @property
    def stored_champion(self) -> float:
        return self._sampler.stored_champion

    @stored_champion.setter
    def stored_champion(self, value: float) -> None:
        self._sampler.stored_champion = value

    def candidate(self) -> float:
        value = self._sampler.candidate()
        self._observer.sample(self._experiment, "candidate", value)
        return value

    def champion(self) -> float:
        value = self._sampler.champion()
        self._observer.sample(self._experiment, "champion", value)
        return value


class Measurement:
    """The measuring step of one worker: the run's (``workspace`` None) or a worker slot's, each with
    its own candidate worktree, champion checkout, pristine harness and executor view, so that the
    two sides of a pair are measured by the same worker."""

    def __init__(self, parts: Parts, workspace: Workspace | None = None, executor: Executor | None = None) -> None:
        self.parts = parts
        self.workspace = workspace or parts.workspace
        self.executor = executor or parts.executor
        name = self.workspace.worktree.name
        self.champion_folder = parts.state_dir / "worktrees" / f"{name}.champion"
        self._pristine_folder = parts.run_dir / ("pristine-harness" if name == parts.run_name else f"pristine-harness.{name}")
        self._champion_checkout: str | None = None
        self._pristine_harness: PristineHarness | None = None
        self._candidate_leftovers: Leftovers | None = None
        # With several workers: the tests made so far and the keeps known, counting those of the
        # experiments still in flight, taken under the run's lock (each test its own index).
        self.reserve_test: Callable[[int], tuple[int, int]] | None = None
        # With an executor that measures in copies: what the candidate worktree holds.
        self.candidate_patch: str | None = None

    def sampler(self, state: RunState, log_dir: Path, interrupts: Interrupts) -> Sampler:
        parts, workspace = self.parts, self.workspace

        def champion_dir() -> Path:
            # Made on first use, at the champion, clean: single measurements never need it.
            if self._champion_checkout != state.champion:
                reference_checkout(parts.repo_root, self.champion_folder, state.champion)
                self._champion_checkout = state.champion
            return self.champion_folder

        def after_candidate() -> Failure | None:
            # Kept for the verdict step: the champion's samples run elsewhere, so this is still
            # the candidate worktree's state when the judging ends (one git status saved).
            self._candidate_leftovers = leftovers = workspace.leftovers()
            tampered = leftovers.tampered(parts.harness)
            if (last := sampler.last_candidate_result()) is not None and last.changed is not None:
                tampered += [path for path in last.changed if parts.harness.matches(path) and path not in tampered]
            if tampered:
                return Failure(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}")
            return None

        sampler = Sampler(
            config=parts.config,
            executor=self.executor,
            candidate_dir=workspace.worktree,
            champion_dir=champion_dir,
            log_dir=log_dir,
            stored_champion=state.champion_metric,
            should_abandon=lambda: interrupts.abandon,
            after_candidate=after_candidate,
            pristine=self._pristine(state),
            sources=self._sources(state) if self.executor.measures_copies else None,
        )
        return sampler

    def _sources(self, state: RunState) -> dict[str, JobSource]:
        root = self.parts.repo_root
        return {"candidate": JobSource(root, state.champion, self.candidate_patch), "champion": JobSource(root, state.champion)}

    def _job(self, job: Job, state: RunState) -> Job:
        """A candidate job as the executor needs it: with its source when it measures in copies."""
        if not self.executor.measures_copies:
            return job
        return replace(job, source=JobSource(self.parts.repo_root, state.champion, self.candidate_patch))

    def _pristine(self, state: RunState) -> PristineHarness | None:
        parts = self.parts
        if not parts.config.metric.trusted_scoring:
            return None
        if self._pristine_harness is None:
            paths = harness_paths(parts.repo_root, state.base_commit, parts.harness.matches)
            self._pristine_harness = PristineHarness(parts.repo_root, state.base_commit, paths, self._pristine_folder)
        return self._pristine_harness

    def run_guards(
        self, log_dir: Path, champion_guards: dict[str, float], interrupts: Interrupts, state: RunState | None = None
    ) -> list[GuardResult]:
        config = self.parts.config
        if not config.guards:
            return []
        job = guard_job(config, self.workspace.worktree, log_dir)
        if state is not None:
            job = self._job(job, state)
        results = self.executor.measure(job, should_abandon=lambda: interrupts.abandon)
        return [
            evaluate_guard(guard, results[i] if i < len(results) else None, champion_guards.get(guard.name))
            for i, guard in enumerate(config.guards)
        ]

    def holdout_value(
        self, log_dir: Path, interrupts: Interrupts, name: str = "holdout", state: RunState | None = None
    ) -> tuple[float | None, str]:
        """The holdout metric of the worktree's candidate, or None and why it has none."""
        spec = self.parts.config.holdout
        assert spec is not None
        job = holdout_job(self.parts.config, self.workspace.worktree, log_dir, name)
        if state is not None:
            job = self._job(job, state)
        (result,) = self.executor.measure(job, should_abandon=lambda: interrupts.abandon)
        if not result.ok:
            return None, "timed out" if result.timed_out else f"exit {result.exit_code}" + (f"; {result.hint}" if result.hint else "")
        try:
            return parse_number(result.read(spec.stream), spec), ""
        except MetricParseError as exc:
            return None, str(exc)

    def measure_and_decide(self, experiment: Experiment, state: RunState, log_dir: Path, interrupts: Interrupts) -> tuple[Decision, Leftovers]:
        """The metric judged by the run's policy; for a would-be keep, then the guards and the holdout."""
        parts = self.parts
        self._candidate_leftovers = None
        sampler = self.sampler(state, log_dir, interrupts)
        rng = random.Random(f"{parts.config.verdict.seed}/{parts.run_name}/{experiment.id}")
        self._refresh_stored_champion(state, sampler)
        past = self.past(experiment, state) if parts.policy.run_level else None
        try:
            judgement = parts.policy.judge(_Announced(sampler, parts.observer, experiment), rng, past)
        except MeasurementFailed as exc:
            self._record_samples(experiment, sampler, None)
            # A failed sample never reached the harness check: look now (a crash may hide a tamper).
            leftovers = self.workspace.leftovers()
            if exc.failure.verdict is not Verdict.TAMPERED and (tampered := leftovers.tampered(parts.harness)):
                return Decision(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}"), leftovers
            return Decision(exc.failure.verdict, exc.failure.reason), leftovers
        finally:
            if (last := sampler.last_candidate_result()) is not None:
                experiment.memory_gb = gigabytes(last.max_rss_bytes)
                experiment.output_tail = last.log_tail()  # read from disk when asked for
        self._record_samples(experiment, sampler, judgement)
        # The champion's score this verdict was made against: with workers (or a re-measure after
        # the champion moved) it is not the one the run has when the experiment is shown.
        experiment.extra["champion_metric"] = state.champion_metric
        if past is not None:
            experiment.extra["tests"] = int(experiment.extra.get("tests", 0)) + 1
            experiment.extra["fdr_horizon"] = past.horizon
        if judgement.champion and (noise := parts.learn_noise(judgement.champion)) is not None and noise.sd_high is not None:
            # The champion measured beside the candidate is one more group of the same code: the noise.
            experiment.extra["noise_estimate"] = {"sd_single": noise.sd_single, "sd_low": noise.sd_low, "sd_high": noise.sd_high, "df": noise.df}
        experiment.metric = judgement.candidate_value
        leftovers = self._candidate_leftovers or self.workspace.leftovers()
        decision = judgement.decision
        if decision.verdict is not Verdict.KEEP:
            return decision, leftovers
        if parts.config.guards:
            decision, leftovers = self._guards(experiment, state, log_dir, interrupts, decision, leftovers)
            if decision.verdict is not Verdict.KEEP:
                return decision, leftovers
        if parts.config.holdout is not None:
            decision = self._check_holdout(experiment, state, log_dir, interrupts, decision)
            leftovers = self.workspace.leftovers()
            if tampered := leftovers.tampered(parts.harness):
                return Decision(Verdict.TAMPERED, f"harness changed during the holdout: {', '.join(tampered)}"), leftovers
        return decision, leftovers

    def past(self, experiment: Experiment, state: RunState) -> Past:
        """What run-level error control needs of the run so far: its tests, its keeps, its horizon
        (the first one recorded, so a resumed run with a new budget keeps the same error spending)."""
        tests, keeps, recorded = state.tally()
        if self.reserve_test is not None:
            tests, keeps = self.reserve_test(experiment.id)
        else:
            tests += int(experiment.extra.get("tests", 0))
        horizon = recorded or self.parts.budget.iterations or DEFAULT_HORIZON
        return Past(tests=tests, keeps=keeps, horizon=max(1, horizon))

    def _guards(
        self, experiment: Experiment, state: RunState, log_dir: Path, interrupts: Interrupts, decision: Decision, leftovers: Leftovers
    ) -> tuple[Decision, Leftovers]:
        # Guards cost time (a test suite): only would-be keeps pay for them.
        parts = self.parts
        experiment.guards = self.run_guards(log_dir, state.champion_guards, interrupts, state)
        if interrupts.abandon:
            return Decision(Verdict.ABANDONED, "abandoned (Ctrl-C) during the guards"), leftovers
        leftovers = self.workspace.leftovers()
        if tampered := leftovers.tampered(parts.harness):
            return Decision(Verdict.TAMPERED, f"harness changed during the guards: {', '.join(tampered)}"), leftovers
        # The metric's verdict stands as the policy gave it (for a re-measuring policy, against
        # the champion measured beside the candidate); the guards can only take a keep away.
        # Comparing again with the champion's recorded score would let one lucky baseline
        # draw overrule the sequential test.
        decision = guarded(decision, experiment.guards, overrulable=parts.config.review.guards())
        if decision.verdict is Verdict.KEEP and (overruled := [guard.name for guard in experiment.guards if not guard.passed]):
            # Only guards that [review] when lets a person overrule failed: held, not thrown away.
            experiment.extra["review_because"] = f"guard {', '.join(overruled)} failed"
        return decision, leftovers

    def _refresh_stored_champion(self, state: RunState, sampler: Sampler) -> None:
        # A recorded score from other hardware is never compared: measure the champion here.
        if state.champion_fingerprint != self.parts.fingerprint and not self.parts.policy.remeasures_champion:
            value = sampler.champion()
            state.champion_metric = sampler.stored_champion = value
            state.champion_fingerprint = self.parts.fingerprint

    def _record_samples(self, experiment: Experiment, sampler: Sampler, judgement: Judgement | None) -> None:
        if judgement is not None:
            experiment.extra.update(judgement.to_json())
        experiment.extra["measurements"] = dict(sampler.counts)
        experiment.extra["fingerprint"] = self.parts.fingerprint
        if sampler.placements:  # every sample of the experiment, those of a re-measurement (rebase, rework) too
            experiment.extra["placements"] = [*experiment.extra.get("placements", []), *sampler.placements]

    def _check_holdout(self, experiment: Experiment, state: RunState, log_dir: Path, interrupts: Interrupts, decision: Decision) -> Decision:
        spec = self.parts.config.holdout
        assert spec is not None
        value, problem = self.holdout_value(log_dir, interrupts, state=state)
        experiment.extra["holdout"] = value
        if value is None:
            return Decision(Verdict.DISCARD, f"{decision.reason}, but the holdout failed: {problem}")
        if state.champion_holdout is None:
            return decision
        overfit = holdout_regressed(spec, state.champion_holdout, value)
        if overfit is None:
            return decision
        experiment.extra["overfit"] = True
        if spec.action == "flag":
            return Decision(Verdict.KEEP, f"{decision.reason}; FLAGGED overfit: {overfit}")
        return Decision(Verdict.OVERFIT, f"{decision.reason}, but {overfit}")


def gigabytes(rss: int | None) -> float | None:
    return None if rss is None else rss / 1024**3
