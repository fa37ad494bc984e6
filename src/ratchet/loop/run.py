"""The loop: wires proposer, workspace, executor, verdict and ledger; owns the budget and resume.

Each step lives in its own module; this one only orders them and keeps the ledger and the
run branch in agreement, so that a kill -9 at any moment leaves a state the next
``ratchet run`` repairs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ratchet.budget import Budget, Progress
from ratchet.config import Config
from ratchet.executors import CommandSpec, Executor, Job, LocalExecutor
from ratchet.executors.sampler import (
    Failure,
    MeasurementFailed,
    PristineHarness,
    Sampler,
    harness_paths,
)
from ratchet.experiment import Experiment, GuardResult, Verdict, guard_failures
from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.measure.runner import MetricParseError, parse_number
from ratchet.proposers import (
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    create_proposer,
)
from ratchet.proposers.base import BudgetExhausted, FatalProposerError, Usage
from ratchet.report.terminal import Display, PlainDisplay
from ratchet.state import STATE_DIR, RunError, run_lock, run_lock_holder
from ratchet.verdict.policies import (
    Decision,
    Judgement,
    evaluate_guard,
    guarded,
    holdout_regressed,
    policy_for,
)
from ratchet.verdict.stats import (
    Noise,
    confidence_interval,
    estimate_noise,
    noise_floor,
)
from ratchet.verdict.stats import improvement as improvement_of
from ratchet.workspace.git import GitError, exclude_state_dir
from ratchet.workspace.preflight import run_blockers
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import (
    EXPERIMENT_TRAILER,
    Candidate,
    GitTampered,
    Leftovers,
    ScopeViolation,
    Workspace,
    reference_checkout,
)

# Settings that define what the run's numbers mean: changing them mid-run would compare
# apples with oranges, so a resumed run refuses.
_FROZEN_SETTINGS = (
    "metric.command", "metric.run", "metric.score", "metric.direction", "metric.regex", "metric.json", "scope.harness",
)  # fmt: skip


# How `ratchet run` exits (documented in the README): a shell or a scheduler branches on it.
EXIT_DONE = 0  # a budget spent or the target reached
EXIT_ERROR = 1  # the run could not start or go on (the baseline failed, git failed, ...)
EXIT_CONFIG = 2  # the config is wrong
EXIT_FAILURES = 4  # stopped by K experiments in a row that crashed or failed
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (or SIGTERM), as shells report SIGINT


@dataclass
class RunSummary:
    run: str
    branch: str
    stop_reason: str
    baseline_metric: float | None
    champion_metric: float | None
    champion_commit: str
    counts: dict[str, int] = field(default_factory=dict)
    exit_code: int = EXIT_DONE


@dataclass
class _State:
    champion: str
    champion_metric: float
    baseline_metric: float
    champion_guards: dict[str, float]
    measured: int
    consecutive_failures: int
    history: list[Experiment]
    base_commit: str = ""
    champion_fingerprint: str = ""
    champion_holdout: float | None = None
    progress: Progress | None = None


class _Interrupts:
    """First Ctrl-C: finish the experiment in flight, then stop. Second (or SIGTERM): abandon it."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.stop = False
        self.abandon = False
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and not self.stop:
            self.stop = True
            self.display.message("Stopping after the experiment in flight (Ctrl-C again to abandon it).")
            return
        self.stop = self.abandon = True
        self.display.message("Abandoning the experiment in flight.")
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a third Ctrl-C is a hard stop

    def __enter__(self) -> "_Interrupts":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def frozen_settings(config: Config) -> dict[str, Any]:
    dump = config.model_dump(mode="json", by_alias=True)
    out = {}
    for dotted in _FROZEN_SETTINGS:
        section, key = dotted.split(".")
        out[dotted] = dump.get(section, {}).get(key)
    return out


class Loop:
    """One run of the autoresearch loop on a repository."""

    def __init__(
        self,
        repo_root: Path,
        config: Config,
        *,
        iterations: int | None = None,
        display: Display | None = None,
        proposer: Proposer | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.repo_root = repo_root
        self.config = config
        self.run_name = config.run.name
        self.display = display or PlainDisplay()
        self.budget = Budget(config.budget, config.metric.direction, iterations)
        self.scope = Globs(config.scope.mutable)
        self.harness = Globs(config.scope.harness)
        self.workspace = Workspace(repo_root, self.run_name, self.scope, self.harness)
        self.state_dir = repo_root / STATE_DIR
        self.run_dir = self.state_dir / "runs" / self.run_name
        self.policy = policy_for(config.verdict, config.metric.direction)
        self._proposer = proposer
        self.executor = executor or LocalExecutor.from_config(config, repo_root)
        self.hardware = hardware_info()
        self.fingerprint = fingerprint(self.hardware)
        self.brief = self._read_brief()
        self._scope_cache: tuple[str, tuple[str, ...]] | None = None
        self.champion_folder = self.state_dir / "worktrees" / f"{self.run_name}.champion"
        self._champion_checkout: str | None = None
        self._pristine_harness: PristineHarness | None = None
        self._candidate_leftovers: Leftovers | None = None
        self.deterministic = config.verdict.deterministic == "yes"

    # ------------------------------------------------------------ entry point

    def run(self) -> RunSummary:
        exclude_state_dir(self.repo_root)
        with run_lock(self.state_dir, self.run_name):
            ledger = Ledger(self.state_dir / LEDGER_FILE)
            try:
                return self._run(ledger)
            finally:
                ledger.close()

    def _open_run(self, ledger: Ledger) -> RunInfo:
        """The run's record: made (with its branch) on first use, checked when resumed."""
        ledger.record_hardware(self.fingerprint, self.hardware)
        info = ledger.get_run(self.run_name)
        if info is None:
            return self._start_new_run(ledger)
        if not any(e.verdict is Verdict.BASELINE for e in ledger.experiments(self.run_name)):
            # The baseline never succeeded: nothing was measured that settings could contradict,
            # so the run starts again from today's HEAD and config (the fix is usually there).
            return self._start_new_run(ledger, again=info)
        self._check_resumable(info)
        return info

    def _run(self, ledger: Ledger) -> RunSummary:
        info = self._open_run(ledger)
        self.display.start(info, self.config, resumed=bool(ledger.experiments(self.run_name)))
        if warning := getattr(self.executor, "warning", None):  # no sandbox: say so, once
            self.display.warning(warning)
        self.workspace.open_worktree()
        self._repair(ledger, info)
        session = ledger.start_session(self.run_name)
        proposer = self._proposer or create_proposer(self.config, root=self.repo_root)
        try:
            with _Interrupts(self.display) as interrupts:
                state = self._baseline(ledger, info, interrupts)
                self._know_noise(ledger, state, interrupts)
                try:
                    proposer.resume(tuple(state.history), self.run_dir / "proposer")
                except ProposerError as exc:
                    raise RunError(f"the {proposer.kind} proposer cannot start: {exc}") from None
                stop_reason, exit_code = self._loop(ledger, session, proposer, state, interrupts)
                if not interrupts.stop:
                    self._confirm(ledger, state, interrupts)
                if interrupts.stop:  # a Ctrl-C during the confirmation race is an interruption too
                    exit_code = EXIT_INTERRUPTED
        finally:
            ledger.touch_session(session)
            proposer.close()
        summary = self._summary(ledger, info, stop_reason)
        summary.exit_code = exit_code
        self.display.finish(summary)
        return summary

    def try_proposal(self, proposal: Proposal, kind: str = "try") -> Experiment:
        """One experiment with a proposal made elsewhere (``ratchet try``, the MCP server).

        The same steps as the loop's (scope check, the run's verdict policy, keep or discard,
        ledger); refuses while a ``ratchet run`` holds the run. No budget applies: whoever calls
        decides when to stop.
        """
        exclude_state_dir(self.repo_root)
        with run_lock(self.state_dir, self.run_name):
            ledger = Ledger(self.state_dir / LEDGER_FILE)
            try:
                info = self._open_run(ledger)
                self.workspace.open_worktree()
                self._repair(ledger, info)
                session = ledger.start_session(self.run_name)
                try:
                    with _Interrupts(self.display) as interrupts:
                        state = self._baseline(ledger, info, interrupts)
                        self._know_noise(ledger, state, interrupts)
                        self.display.champion_is(state.baseline_metric, state.champion_metric)
                        experiment, _ = self._experiment(ledger, _Given(proposal, kind), state, interrupts)
                finally:
                    ledger.touch_session(session)
                return experiment
            finally:
                ledger.close()

    def _know_noise(self, ledger: Ledger, state: _State, interrupts: _Interrupts) -> None:
        """Use this machine's last A/A calibration, or make one."""
        calibrations = ledger.events(self.run_name, "calibration")
        if calibrations and calibrations[-1].get("fingerprint") == self.fingerprint:
            self._apply_noise(_noise_from(calibrations[-1]), quiet=True)
        else:
            self._calibrate(ledger, state, interrupts, after=len(state.history) - 1)

    # ------------------------------------------------------------ set-up and repair

    def _read_brief(self) -> str:
        path = self.repo_root / self.config.run.brief
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _start_new_run(self, ledger: Ledger, again: RunInfo | None = None) -> RunInfo:
        ws = self.workspace
        if again is not None:
            for leftover in ledger.experiments(self.run_name):  # a baseline killed mid-measurement
                self._set_aside_failed_baseline(ledger, leftover)
            ws.remove_run(again.base_commit)
        if ws.branch_exists():
            raise RunError(
                f"branch {ws.branch} exists but the ledger has no run {self.run_name!r}; "
                f"choose another [run] name or delete the branch (git branch -D {ws.branch})"
            )
        head = ws.user_head()
        # What `ratchet doctor` fails on without running a command stops the run here too:
        # a scope or harness glob that matches nothing would otherwise protect nothing, silently.
        for finding in run_blockers(self.config, self.repo_root):
            raise RunError(f"{finding.what}: {finding.detail}; {finding.fix}")
        if not self.config.scope.harness and "harness" not in self.config.scope.model_fields_set:
            self.display.warning(
                "no [scope] harness: nothing checks that a candidate leaves the measurement alone "
                "(list the files the metric depends on, or write harness = [] to run without on purpose)"
            )
        for path in ws.uncommitted_in_user_checkout():
            self.display.warning(f"{path} has uncommitted changes; the run starts from HEAD ({head[:7]}) without them")
        # The ledger row comes first: a kill before the branch exists is repaired by resume.
        info = RunInfo(
            name=self.run_name,
            created=time.time(),
            base_commit=head,
            branch=ws.branch,
            metric_name=self.config.metric.name,
            direction=self.config.metric.direction,
            config=self.config.model_dump(mode="json", by_alias=True),
        )
        if again is None:
            ledger.create_run(info)
        else:
            ledger.restart_run(info)
        ws.create_branch()
        return info

    def _set_aside_failed_baseline(self, ledger: Ledger, experiment: Experiment) -> None:
        """A baseline that failed leaves no experiment row, branch or worktree behind: the
        attempt becomes a ``baseline-failed`` event (its logs moved beside), so the next
        ``ratchet run`` measures experiment 0 afresh."""
        log_dir = Path(experiment.log_dir)
        if log_dir.is_dir():
            kept = log_dir.with_name(f"baseline-failed-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            log_dir.rename(kept)
            experiment.log_dir = str(kept)
        ledger.add_event(self.run_name, "baseline-failed", experiment.to_json())
        ledger.delete(experiment)

    def _check_resumable(self, info: RunInfo) -> None:
        stored = {}
        for dotted in _FROZEN_SETTINGS:
            section, key = dotted.split(".")
            stored[dotted] = info.config.get(section, {}).get(key)
        current = frozen_settings(self.config)
        changed = [name for name in _FROZEN_SETTINGS if stored[name] != current[name]]
        if changed:
            raise RunError(
                f"{', '.join(changed)} changed since run {self.run_name!r} started; its numbers would no longer "
                "compare. Start a new run ([run] name or --name) or restore the setting"
            )

    def _repair(self, ledger: Ledger, info: RunInfo) -> None:
        """Make the ledger and the run branch agree after whatever stopped the last session."""
        ws = self.workspace
        if not ws.branch_exists():  # killed between the ledger row and the branch
            ws.create_branch()
        kept_on_branch = ws.kept_experiments(info.base_commit)
        for experiment in ledger.experiments(self.run_name):
            if experiment.state == "done":
                continue
            if experiment.state == "committing" and experiment.id in kept_on_branch:
                experiment.commit = kept_on_branch[experiment.id]
                experiment.state = "done"
                self.display.message(f"Repaired experiment {experiment.id}: its keep was committed, ledger updated.")
            else:
                experiment.verdict = Verdict.ABANDONED
                experiment.reason = (experiment.reason + "; " if experiment.reason else "") + "interrupted: ratchet stopped mid-experiment"
                experiment.commit = None
                experiment.state = "done"
                experiment.ended = experiment.ended or time.time()
                self.display.message(f"Experiment {experiment.id} was interrupted; recorded as abandoned.")
            ledger.update(experiment)
        ledger_keeps = {e.id: e.commit for e in ledger.experiments(self.run_name) if e.verdict is Verdict.KEEP}
        if ledger_keeps != kept_on_branch:
            missing = sorted(set(ledger_keeps) - set(kept_on_branch))
            extra = sorted(set(kept_on_branch) - set(ledger_keeps))
            raise RunError(
                f"ledger and branch {ws.branch} disagree (kept in ledger, not on branch: {missing}; "
                f"on branch, not kept in ledger: {extra}); was the branch rewritten? Start a new run"
            )
        ws.reset_clean()

    def _baseline(self, ledger: Ledger, info: RunInfo, interrupts: _Interrupts) -> _State:
        history = ledger.experiments(self.run_name)
        champion = self.workspace.champion()
        baseline = next((e for e in history if e.verdict is Verdict.BASELINE), None)
        if baseline is None:
            baseline = self._measure_baseline(ledger, champion, info, interrupts)
            history.append(baseline)
        assert baseline.metric is not None
        last_keep = next((e for e in reversed(history) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), baseline)
        assert last_keep.metric is not None
        failures = 0
        for experiment in reversed(history):
            if experiment.verdict is None or experiment.verdict is Verdict.ABANDONED:
                continue
            if not (experiment.verdict.is_failure or experiment.reason.startswith("proposer:")):
                break
            failures += 1
        return _State(
            champion=champion,
            champion_metric=last_keep.metric,
            baseline_metric=baseline.metric,
            champion_guards={g.name: g.value for g in last_keep.guards if g.value is not None},
            measured=sum(1 for e in history if e.verdict and e.verdict.counts_as_iteration),
            consecutive_failures=failures,
            history=history,
            base_commit=info.base_commit,
            champion_fingerprint=last_keep.hardware,
            champion_holdout=last_keep.extra.get("holdout"),
        )

    def _measure_baseline(self, ledger: Ledger, champion: str, info: RunInfo, interrupts: _Interrupts) -> Experiment:
        experiment = self._new_experiment(ledger, champion, proposer="baseline")
        experiment.hypothesis = "baseline"
        self.display.experiment_started(experiment)
        log_dir = Path(experiment.log_dir)
        state = _State(
            champion=champion, champion_metric=math.nan, baseline_metric=math.nan, champion_guards={},
            measured=0, consecutive_failures=0, history=[], base_commit=info.base_commit,
            champion_fingerprint=self.fingerprint,
        )  # fmt: skip
        sampler = self._sampler(state, log_dir, interrupts)
        failure: Decision | None = None
        value: float | None = None
        try:
            value = sampler.candidate()
        except MeasurementFailed as exc:
            failure = Decision(exc.failure.verdict, exc.failure.reason)
            if failure.verdict is Verdict.TAMPERED:
                failure = Decision(Verdict.TAMPERED, failure.reason.replace("harness changed during measurement", "the metric command itself changes harness files"))
        last = sampler.last_candidate_result()
        if last is not None:
            experiment.memory_gb = _gb(last.max_rss_bytes)
            experiment.output_tail = last.tail()
        guards: list[GuardResult] = []
        tail = last.tail(600).strip() if last is not None else ""
        if failure is None:
            guards = self._run_guards(log_dir, {}, interrupts)
            failed = [g for g in guards if not g.passed]
            if failed:
                failure = Decision(Verdict.CRASH, "guard fails on the baseline: " + ", ".join(f"{g.name} ({g.reason})" for g in failed))
                tail = guard_failures(failed)
        if failure is None and self.config.holdout is not None:
            holdout, problem = self._holdout_value(log_dir, interrupts, "holdout")
            if holdout is None:
                failure = Decision(Verdict.CRASH, f"the holdout fails on the baseline: {problem}")
            experiment.extra["holdout"] = holdout
        experiment.guards = guards
        experiment.ended = time.time()
        experiment.state = "done"
        if failure is not None:
            experiment.verdict = Verdict.ABANDONED if failure.verdict is Verdict.ABANDONED else failure.verdict
            experiment.reason = "baseline: " + failure.reason
            ledger.update(experiment)
            self.workspace.discard()
            self._set_aside_failed_baseline(ledger, experiment)
            self.workspace.remove_run(info.base_commit)
            raise RunError(
                f"the baseline measurement failed ({failure.verdict}): {failure.reason}"
                + (f"\n{tail}" if tail and failure.verdict is not Verdict.TAMPERED else "")
                + f"\nlogs: {experiment.log_dir}"
                + f"\nnothing was kept: branch {self.workspace.branch} and its worktree are removed; fix the cause and run again"
            )
        experiment.verdict = Verdict.BASELINE
        experiment.metric = value
        experiment.reason = "the champion at the start of the run"
        experiment.extra["fingerprint"] = self.fingerprint
        ledger.update(experiment)
        self.workspace.discard()
        self.display.experiment_done(experiment)
        return experiment

    # ------------------------------------------------------------ noise

    def _calibrate(self, ledger: Ledger, state: _State, interrupts: _Interrupts, after: int) -> None:
        """A/A: the champion measured against itself, to estimate the noise of one comparison."""
        pairs = self.config.verdict.calibrate_pairs
        if pairs < 2:
            return
        log_dir = self.run_dir / "logs" / f"calibration-{after:04d}"
        sampler = self._sampler(state, log_dir, interrupts)
        first: list[float] = []
        second: list[float] = []
        self.display.message(f"Measuring the noise: the champion against itself, {pairs} pairs…")
        try:
            for _ in range(pairs):
                first.append(sampler.champion())
                second.append(sampler.champion())
        except MeasurementFailed as exc:
            self.display.warning(f"noise calibration failed: {exc.failure.reason}")
            return
        log_scale = self.config.verdict.scale == "log" or (
            self.config.verdict.scale == "auto" and self.config.verdict.min_effect.relative and min(first + second) > 0
        )
        noise = estimate_noise(first, second, log_scale)
        data = {
            "pairs": noise.pairs, "sd_single": noise.sd_single, "sd_pair": noise.sd_pair, "mean": noise.mean,
            "relative": noise.relative, "deterministic": noise.deterministic, "scale": "log" if log_scale else "absolute",
            "samples": [first, second], "fingerprint": self.fingerprint,
        }  # fmt: skip
        ledger.add_event(self.run_name, "calibration", data, after_experiment=after)
        self._apply_noise(noise)

    def _apply_noise(self, noise: Noise, quiet: bool = False) -> None:
        verdict = self.config.verdict
        self.deterministic = noise.deterministic if verdict.deterministic == "auto" else verdict.deterministic == "yes"
        if noise.deterministic:
            if not quiet:
                self.display.message("Noise: none (the metric is deterministic); one measurement decides.")
            if verdict.deterministic == "auto":
                self.policy = policy_for(verdict, self.config.metric.direction, deterministic=True)
            return
        if verdict.deterministic == "auto" and getattr(self.policy, "deterministic", False):
            self.policy = policy_for(verdict, self.config.metric.direction)
        if quiet:
            return
        unit = f" ({noise.relative:.2%} of the metric)" if noise.relative is not None else ""
        scale = "log-ratio" if noise.log_scale else self.config.metric.name
        self.display.message(f"Noise: one measurement varies by sd {noise.sd_single:.4g} {scale}{unit}; one comparison by {noise.sd_pair:.4g}.")
        floor = noise_floor(verdict, noise)
        effect = verdict.min_effect.value / 100 if verdict.min_effect.relative else verdict.min_effect.value
        if noise.log_scale and verdict.min_effect.relative:
            effect = math.log1p(effect)
        elif verdict.min_effect.relative:
            effect = verdict.min_effect.amount(noise.mean)
        if effect < floor:
            what = {"single": "one measurement each", "repeat": f"medians of {verdict.repeats}", "sequential": f"up to {verdict.max_pairs} pairs"}[verdict.mode]
            advice = "; `sequential` mode keeps its false-keep rate at alpha anyway" if verdict.mode == "sequential" else (
                "; expect noise to be kept as improvements — raise min_effect or use mode = \"sequential\""
            )
            self.display.warning(f"min_effect {verdict.min_effect} is below the noise floor ({floor:.4g} on the {scale} scale) of {what}{advice}")

    # ------------------------------------------------------------ the loop

    def _loop(self, ledger: Ledger, session: int, proposer: Proposer, state: _State, interrupts: _Interrupts) -> tuple[str, int]:
        """Experiments until the budget ends: returns why it stopped and the exit code that says so."""
        while True:
            ledger.touch_session(session)
            tokens, cost = ledger.spent(self.run_name)
            progress = Progress(
                measured=state.measured,
                wall_spent=ledger.wall_spent(self.run_name),
                champion_metric=state.champion_metric,
                consecutive_failures=state.consecutive_failures,
                tokens_spent=tokens,
                cost_spent=cost,
            )
            state.progress = progress
            self.display.progress(progress, self.budget, state.baseline_metric, state.champion_metric)
            if interrupts.stop:
                return "interrupted (Ctrl-C)", EXIT_INTERRUPTED
            stop = self.budget.stop(progress)
            if stop:
                return stop.reason, EXIT_FAILURES if stop.failed else EXIT_DONE
            try:
                experiment, proposal = self._experiment(ledger, proposer, state, interrupts)
            except BudgetExhausted as exc:
                return str(exc), EXIT_DONE
            state.history.append(experiment)
            assert experiment.verdict is not None
            if experiment.verdict.counts_as_iteration:
                state.measured += 1
            if experiment.verdict.is_failure or experiment.reason.startswith("proposer:"):
                state.consecutive_failures += 1
            elif experiment.verdict is not Verdict.ABANDONED:
                state.consecutive_failures = 0
            if experiment.verdict is Verdict.KEEP:
                assert experiment.commit is not None and experiment.metric is not None
                state.champion = experiment.commit
                state.champion_metric = experiment.metric
                state.champion_guards = {g.name: g.value for g in experiment.guards if g.value is not None}
                state.champion_fingerprint = self.fingerprint
                if "holdout" in experiment.extra:
                    state.champion_holdout = experiment.extra["holdout"]
            every = self.config.verdict.recalibrate_every
            if every and experiment.verdict.counts_as_iteration and state.measured % every == 0:
                self._calibrate(ledger, state, interrupts, after=experiment.id)
            guards_passed = all(guard.passed for guard in experiment.guards)
            proposer.observe(Outcome(experiment.id, experiment.verdict, experiment.metric, proposal, guards_passed))
            self.display.experiment_done(experiment)
            if experiment.verdict is Verdict.TAMPERED:
                self.display.alarm(f"experiment {experiment.id} TAMPERED with the harness: {experiment.reason}")

    def _experiment(
        self, ledger: Ledger, proposer: Proposer, state: _State, interrupts: _Interrupts
    ) -> tuple[Experiment, Proposal | None]:
        """One experiment, from proposal to recorded verdict. Always leaves the worktree clean."""
        experiment = self._new_experiment(ledger, state.champion, proposer=proposer.kind)
        log_dir = Path(experiment.log_dir)
        self.display.experiment_started(experiment)
        proposal: Proposal | None = None
        try:
            context = self._context(experiment, state)
            try:
                proposal = proposer.propose(context)
            except BudgetExhausted as exc:
                # Nothing was proposed: the experiment did not happen; its row is removed so
                # the ledger only holds experiments.
                ledger.delete(experiment)
                self._record_usage(ledger, exc.usage, previous=None)
                raise
            except FatalProposerError as exc:  # e.g. a rejected API key: no use trying again
                ledger.delete(experiment)
                self._record_usage(ledger, exc.usage, previous=None)
                raise RunError(f"the {proposer.kind} proposer cannot go on: {exc}") from None
            except ProposerError as exc:
                self._set_usage(experiment, exc.usage)
                return self._finish(ledger, experiment, Decision(Verdict.INVALID, f"proposer: {exc}")), None
            except Exception as exc:  # a bug in a proposer is recorded; K in a row stop the run
                reason = f"proposer: crashed: {type(exc).__name__}: {exc}"
                return self._finish(ledger, experiment, Decision(Verdict.INVALID, reason)), None
            experiment.hypothesis = proposal.hypothesis
            experiment.proposal_meta = dict(proposal.meta)
            self._set_usage(experiment, proposal.usage)
            ledger.update(experiment)
            if interrupts.abandon:
                return self._finish(ledger, experiment, Decision(Verdict.ABANDONED, "abandoned (Ctrl-C)")), proposal
            try:
                candidate = self.workspace.materialize(proposal, log_dir / "proposal.patch", state.champion)
            except ScopeViolation as exc:
                verdict = Verdict.TAMPERED if isinstance(exc, GitTampered) else Verdict.INVALID
                if proposal.review_of is not None and "does not apply" in str(exc):
                    # The champion moved since the review was asked for, and the change conflicts.
                    reason = f"the change of experiment #{proposal.review_of} no longer applies to the champion: {exc}"
                    return self._finish(ledger, experiment, Decision(Verdict.STALE, reason)), proposal
                return self._finish(ledger, experiment, Decision(verdict, f"rejected before measuring: {exc}")), proposal
            if candidate.diff is not None:
                (log_dir / "proposal.diff").write_text(candidate.diff, errors="surrogateescape")
            experiment.extra["change_id"] = change_id = self.workspace.change_id(candidate)
            if proposer.refuses_repeats and not proposal.again and (earlier := _measured_before(state, change_id)):
                reason = (  # "proposer:": a proposer stuck on one change counts toward the failures-in-a-row stop
                    f"proposer: the same change as experiment #{earlier.id} on this champion ({earlier.verdict}); "
                    "not measured again (`ratchet try --again` re-measures a change on purpose)"
                )
                return self._finish(ledger, experiment, Decision(Verdict.INVALID, reason), None, candidate), proposal
            decision, leftovers = self._measure_and_decide(experiment, state, log_dir, interrupts)
            if self.config.verdict.rework and self._guard_failed(experiment, decision):
                decision, leftovers, candidate = self._rework(
                    ledger, proposer, context, experiment, state, interrupts, decision, leftovers, candidate
                )
            if decision.verdict is Verdict.KEEP:
                if proposal.review_of is None and (why := self._review_needed(experiment, candidate)):
                    return self._hold(ledger, experiment, decision, candidate, leftovers, state, why), proposal
                return self._keep(ledger, experiment, decision, candidate, leftovers, state), proposal
            return self._finish(ledger, experiment, decision, leftovers, candidate), proposal
        except GitError as exc:
            # git failing under us (disk full, a lock held by someone else) is not the
            # candidate's fault and not safe to go on from.
            self._finish(ledger, experiment, Decision(Verdict.ABANDONED, f"git failed: {exc}"))
            raise RunError(f"git failed during experiment {experiment.id}: {exc}") from None

    @staticmethod
    def _guard_failed(experiment: Experiment, decision: Decision) -> bool:
        return decision.verdict is Verdict.DISCARD and any(not g.passed for g in experiment.guards)

    def _rework(
        self, ledger: Ledger, proposer: Proposer, context: ProposalContext, experiment: Experiment, state: _State,
        interrupts: _Interrupts, decision: Decision, leftovers: Leftovers, candidate: Candidate,
    ) -> tuple[Decision, Leftovers, Candidate]:  # fmt: skip
        """Give the proposer the failed guards' output and up to ``verdict.rework`` tries to mend."""
        log_dir = Path(experiment.log_dir)
        tries: list[dict[str, Any]] = experiment.extra.setdefault("rework", [])
        for attempt in range(1, self.config.verdict.rework + 1):
            if interrupts.abandon or not self._guard_failed(experiment, decision):
                break
            feedback = self._guard_feedback(experiment, log_dir if attempt == 1 else log_dir / f"rework-{attempt - 1}")
            attempt_dir = log_dir / f"rework-{attempt}"
            attempt_dir.mkdir(parents=True, exist_ok=True)
            self.workspace.drop_leftovers(candidate)  # the proposer sees its candidate, not build products
            try:
                mended = proposer.mend(dataclasses.replace(context, rework=feedback, log_dir=attempt_dir))
            except ProposerError as exc:
                tries.append({"try": attempt, "error": str(exc)})
                break
            if mended is None:
                break
            if mended.usage is not None:
                experiment.tokens_in = (experiment.tokens_in or 0) + mended.usage.tokens_in
                experiment.tokens_out = (experiment.tokens_out or 0) + mended.usage.tokens_out
                experiment.cost_usd = (experiment.cost_usd or 0.0) + mended.usage.cost_usd
            try:
                self.workspace.materialize(mended, attempt_dir / "proposal.patch", state.champion)
                candidate = self.workspace.check_scope(diff=None)  # the candidate, mended: all its changes
            except ScopeViolation as exc:
                if "changes nothing" in str(exc):  # no further change: the candidate stays as it was
                    tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": "no change"})
                    continue
                tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": f"rejected: {exc}"})
                verdict = Verdict.TAMPERED if isinstance(exc, GitTampered) else Verdict.INVALID
                return Decision(verdict, f"rework {attempt} rejected: {exc}"), self.workspace.leftovers(), candidate
            if candidate.diff is not None:
                (log_dir / "proposal.diff").write_text(candidate.diff, errors="surrogateescape")
            experiment.extra["change_id"] = self.workspace.change_id(candidate)
            experiment.hypothesis = f"{experiment.hypothesis} (mended: {mended.hypothesis})"
            experiment.guards = []
            ledger.update(experiment)
            decision, leftovers = self._measure_and_decide(experiment, state, attempt_dir, interrupts)
            tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": str(decision.verdict)})
        return decision, leftovers, candidate

    @staticmethod
    def _guard_feedback(experiment: Experiment, log_dir: Path) -> str:
        parts = []
        for guard in experiment.guards:
            if guard.passed:
                continue
            parts.append(f"guard {guard.name} failed: {guard.reason}")
            for stream in ("stdout", "stderr"):
                path = log_dir / f"guard-{guard.name}.{stream}"
                if path.exists():
                    tail = path.read_bytes()[-3000:].decode(errors="replace").strip()
                    if tail:
                        parts.append(f"--- {stream} ---\n{tail}")
        return "\n".join(parts)

    def _new_experiment(self, ledger: Ledger, champion: str, proposer: str) -> Experiment:
        experiment_id = ledger.next_id(self.run_name)
        log_dir = self.run_dir / "logs" / f"{experiment_id:04d}"
        log_dir.mkdir(parents=True, exist_ok=True)
        experiment = Experiment(
            run=self.run_name,
            id=experiment_id,
            parent_commit=champion,
            proposer=proposer,
            started=time.time(),
            log_dir=str(log_dir),
            hardware=self.fingerprint,
        )
        ledger.begin(experiment)
        return experiment

    @staticmethod
    def _set_usage(experiment: Experiment, usage: Usage | None) -> None:
        if usage is not None:
            experiment.tokens_in = usage.tokens_in
            experiment.tokens_out = usage.tokens_out
            experiment.cost_usd = usage.cost_usd

    def _record_usage(self, ledger: Ledger, usage: Usage | None, previous: Experiment | None) -> None:
        # Spending that belongs to no experiment (a call refused for the budget after it was
        # partly made) is added to the last experiment so the run's totals stay true.
        if usage is None or not (usage.tokens_in or usage.tokens_out or usage.cost_usd):
            return
        rows = ledger.experiments(self.run_name)
        if not rows:
            return
        last = rows[-1]
        last.tokens_in = (last.tokens_in or 0) + usage.tokens_in
        last.tokens_out = (last.tokens_out or 0) + usage.tokens_out
        last.cost_usd = (last.cost_usd or 0.0) + usage.cost_usd
        ledger.update(last)

    def _scope_files(self, champion: str) -> tuple[str, ...]:
        # Listing the tree costs a git process; it only changes when the champion does.
        if self._scope_cache is None or self._scope_cache[0] != champion:
            self._scope_cache = (champion, tuple(self.scope.select(self.workspace.tracked_files(champion))))
        return self._scope_cache[1]

    def _update_scope_cache(self, commit: str, candidate: Candidate) -> None:
        # The new champion's scope files are the old ones plus what the keep added, minus what
        # it deleted: no need to list the tree again.
        if self._scope_cache is None:
            return
        files = set(self._scope_cache[1]) | set(candidate.paths)
        files -= {path for path in candidate.paths if not os.path.lexists(self.workspace.worktree / path)}
        self._scope_cache = (commit, tuple(sorted(files)))

    def _context(self, experiment: Experiment, state: _State) -> ProposalContext:
        return ProposalContext(
            run=self.run_name,
            iteration=experiment.id,
            worktree=self.workspace.worktree,
            brief=self.brief,
            scope=tuple(self.scope.globs),
            scope_files=self._scope_files(state.champion),
            metric_name=self.config.metric.name,
            direction=self.config.metric.direction,
            champion_metric=state.champion_metric,
            baseline_metric=state.baseline_metric,
            history=tuple(_without_holdout(e) for e in state.history),
            state_dir=self.run_dir / "proposer",
            log_dir=Path(experiment.log_dir),
            tokens_left=self.budget.tokens_left(state.progress) if state.progress else None,
            cost_left_usd=self.budget.cost_left(state.progress) if state.progress else None,
        )

    def _sampler(self, state: _State, log_dir: Path, interrupts: _Interrupts) -> Sampler:
        def champion_dir() -> Path:
            # Made on first use, at the champion, clean: single measurements never need it.
            if self._champion_checkout != state.champion:
                reference_checkout(self.repo_root, self.champion_folder, state.champion)
                self._champion_checkout = state.champion
            return self.champion_folder

        def after_candidate() -> Failure | None:
            # Kept for the verdict step: the champion's samples run elsewhere, so this is still
            # the candidate worktree's state when the judging ends (one git status saved).
            self._candidate_leftovers = leftovers = self.workspace.leftovers()
            tampered = leftovers.tampered(self.harness)
            if tampered:
                return Failure(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}")
            return None

        return Sampler(
            config=self.config,
            executor=self.executor,
            candidate_dir=self.workspace.worktree,
            champion_dir=champion_dir,
            log_dir=log_dir,
            stored_champion=state.champion_metric,
            should_abandon=lambda: interrupts.abandon,
            after_candidate=after_candidate,
            pristine=self._pristine(state),
        )

    def _pristine(self, state: _State) -> PristineHarness | None:
        if not self.config.metric.trusted_scoring:
            return None
        if self._pristine_harness is None:
            paths = harness_paths(self.repo_root, state.base_commit, self.harness.matches)
            self._pristine_harness = PristineHarness(self.repo_root, state.base_commit, paths, self.run_dir / "pristine-harness")
        return self._pristine_harness

    def _run_guards(self, log_dir: Path, champion_guards: dict[str, float], interrupts: _Interrupts) -> list[GuardResult]:
        guards = self.config.guards
        if not guards:
            return []
        job = Job(
            worktree=self.workspace.worktree,
            commands=tuple(
                CommandSpec(f"guard-{guard.name}", guard.command, guard.timeout or self.config.budget.experiment_timeout)
                for guard in guards
            ),
            log_dir=log_dir,
            stop_on_failure=True,
        )
        results = self.executor.measure(job, should_abandon=lambda: interrupts.abandon)
        return [
            evaluate_guard(guard, results[i] if i < len(results) else None, champion_guards.get(guard.name))
            for i, guard in enumerate(guards)
        ]

    def _measure_and_decide(
        self, experiment: Experiment, state: _State, log_dir: Path, interrupts: _Interrupts
    ) -> tuple[Decision, Leftovers]:
        self._candidate_leftovers = None
        sampler = self._sampler(state, log_dir, interrupts)
        rng = random.Random(f"{self.config.verdict.seed}/{self.run_name}/{experiment.id}")
        self._refresh_stored_champion(state, sampler)
        try:
            judgement = self.policy.judge(sampler, rng)
        except MeasurementFailed as exc:
            self._record_samples(experiment, sampler, None)
            # A failed sample never reached the harness check: look now (a crash may hide a tamper).
            leftovers = self.workspace.leftovers()
            if exc.failure.verdict is not Verdict.TAMPERED and (tampered := leftovers.tampered(self.harness)):
                return Decision(Verdict.TAMPERED, f"harness changed during measurement: {', '.join(tampered)}"), leftovers
            return Decision(exc.failure.verdict, exc.failure.reason), leftovers
        finally:
            if (last := sampler.last_candidate_result()) is not None:
                experiment.memory_gb = _gb(last.max_rss_bytes)
                experiment.output_tail = last.tail()
        self._record_samples(experiment, sampler, judgement)
        experiment.metric = judgement.candidate_value
        leftovers = self._candidate_leftovers or self.workspace.leftovers()
        decision = judgement.decision
        if decision.verdict is not Verdict.KEEP:
            return decision, leftovers
        if self.config.guards:
            # Guards cost time (a test suite): only would-be keeps pay for them.
            experiment.guards = self._run_guards(log_dir, state.champion_guards, interrupts)
            if interrupts.abandon:
                return Decision(Verdict.ABANDONED, "abandoned (Ctrl-C) during the guards"), leftovers
            leftovers = self.workspace.leftovers()
            if tampered := leftovers.tampered(self.harness):
                return Decision(Verdict.TAMPERED, f"harness changed during the guards: {', '.join(tampered)}"), leftovers
            # The metric's verdict stands as the policy gave it (for a re-measuring policy, against
            # the champion measured beside the candidate); the guards can only take a keep away.
            # Comparing again with the champion's recorded score would let one lucky baseline
            # draw overrule the sequential test.
            decision = guarded(decision, experiment.guards, overrulable=self.config.review.guards())
            if decision.verdict is not Verdict.KEEP:
                return decision, leftovers
            if overruled := [guard.name for guard in experiment.guards if not guard.passed]:
                # Only guards that [review] when lets a person overrule failed: held, not thrown away.
                experiment.extra["review_because"] = f"guard {', '.join(overruled)} failed"
        if self.config.holdout is not None:
            decision = self._check_holdout(experiment, state, log_dir, interrupts, decision)
            leftovers = self.workspace.leftovers()
            if tampered := leftovers.tampered(self.harness):
                return Decision(Verdict.TAMPERED, f"harness changed during the holdout: {', '.join(tampered)}"), leftovers
        return decision, leftovers

    def _refresh_stored_champion(self, state: _State, sampler: Sampler) -> None:
        # A recorded score from other hardware is never compared: measure the champion here.
        if state.champion_fingerprint != self.fingerprint and not self.policy.remeasures_champion:
            value = sampler.champion()
            state.champion_metric = sampler.stored_champion = value
            state.champion_fingerprint = self.fingerprint

    def _record_samples(self, experiment: Experiment, sampler: Sampler, judgement: Judgement | None) -> None:
        if judgement is not None:
            experiment.extra.update(judgement.to_json())
        experiment.extra["measurements"] = dict(sampler.counts)
        experiment.extra["fingerprint"] = self.fingerprint

    def _holdout_value(self, log_dir: Path, interrupts: _Interrupts, name: str) -> tuple[float | None, str]:
        spec = self.config.holdout
        assert spec is not None
        job = Job(
            worktree=self.workspace.worktree,
            commands=(CommandSpec(name, spec.command, spec.timeout or self.config.budget.experiment_timeout),),
            log_dir=log_dir,
        )
        (result,) = self.executor.measure(job, should_abandon=lambda: interrupts.abandon)
        if not result.ok:
            return None, "timed out" if result.timed_out else f"exit {result.exit_code}" + (f"; {result.hint}" if result.hint else "")
        try:
            return parse_number(result.read(spec.stream), spec), ""
        except MetricParseError as exc:
            return None, str(exc)

    def _check_holdout(
        self, experiment: Experiment, state: _State, log_dir: Path, interrupts: _Interrupts, decision: Decision
    ) -> Decision:
        spec = self.config.holdout
        assert spec is not None
        value, problem = self._holdout_value(log_dir, interrupts, "holdout")
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

    def _keep(
        self, ledger: Ledger, experiment: Experiment, decision: Decision, candidate: Candidate, leftovers: Leftovers, state: _State
    ) -> Experiment:
        experiment.verdict = decision.verdict
        experiment.reason = decision.reason
        experiment.state = "committing"  # the verdict is on disk before the commit exists
        experiment.ended = time.time()
        ledger.update(experiment)
        experiment.commit = self.workspace.keep(candidate, self._commit_message(experiment, state), leftovers)
        self._update_scope_cache(experiment.commit, candidate)
        experiment.state = "done"
        ledger.update(experiment)
        return experiment

    def _review_needed(self, experiment: Experiment, candidate: Candidate) -> str:
        """Why a would-be keep must wait for a person ([review]), or "" when it need not."""
        reasons = []
        if self.config.review.paths:
            touched = Globs(self.config.review.paths).select(list(candidate.paths))
            if touched:
                reasons.append(f"it changes {', '.join(touched[:5])} ([review] paths)")
        if because := experiment.extra.get("review_because"):
            reasons.append(f"{because} ([review] when)")
        return "; ".join(reasons)

    def _hold(
        self, ledger: Ledger, experiment: Experiment, decision: Decision, candidate: Candidate, leftovers: Leftovers,
        state: _State, why: str,
    ) -> Experiment:  # fmt: skip
        """A would-be keep a person must approve: committed on a review branch of its own (the run
        branch does not move, later candidates do not build on it) and recorded as needs-review."""
        branch = review_branch(self.run_name, experiment.id)
        commit = self.workspace.hold(candidate, self._commit_message(experiment, state), branch, state.champion)
        experiment.extra["review"] = {"state": "pending", "branch": branch, "commit": commit, "why": why}
        held = Decision(Verdict.NEEDS_REVIEW, f"{decision.reason}; waits for review: {why} (ratchet review)")
        return self._finish(ledger, experiment, held, leftovers, candidate)

    def _commit_message(self, experiment: Experiment, state: _State) -> str:
        metric = self.config.metric.name
        assert experiment.metric is not None
        change = ""
        if state.champion_metric:
            change = f" ({(experiment.metric - state.champion_metric) / abs(state.champion_metric):+.2%})"
        title = " ".join(experiment.hypothesis.split())[:200] or f"experiment {experiment.id}"
        return (
            f"{title}\n\n"
            f"{metric}: {experiment.metric:.6g}, was {state.champion_metric:.6g}{change}\n\n"
            f"Ratchet-Run: {self.run_name}\n{EXPERIMENT_TRAILER}: {experiment.id}\n"
        )

    def _finish(
        self,
        ledger: Ledger,
        experiment: Experiment,
        decision: Decision,
        leftovers: Leftovers | None = None,
        candidate: Candidate | None = None,
    ) -> Experiment:
        experiment.verdict = decision.verdict
        experiment.reason = decision.reason
        experiment.state = "done"
        experiment.ended = time.time()
        if decision.verdict in (Verdict.TAMPERED, Verdict.ABANDONED):
            # A discarded candidate's metric is real and worth keeping; a tampered or
            # abandoned one's is not to be trusted or compared.
            experiment.metric = None
        ledger.update(experiment)
        self.workspace.discard(leftovers, candidate)
        return experiment

    # ------------------------------------------------------------ end

    def _confirm(self, ledger: Ledger, state: _State, interrupts: _Interrupts) -> None:
        """The final champion against the original baseline, in interleaved pairs, with a 95% CI."""
        pairs = self.config.verdict.confirm_pairs
        if pairs < 1 or state.champion == state.base_commit:
            return
        if self.deterministic:
            pairs = 1  # the same code gives the same number: one pair is the whole truth
        baseline_folder = self.state_dir / "worktrees" / f"{self.run_name}.baseline"
        reference_checkout(self.repo_root, baseline_folder, state.base_commit)
        log_dir = self.run_dir / "logs" / "confirmation"
        sampler = self._sampler(state, log_dir, interrupts)
        champion_dir = sampler.champion_dir()
        confirm = Sampler(
            config=self.config, executor=self.executor, candidate_dir=champion_dir, champion_dir=lambda: baseline_folder,
            log_dir=log_dir, stored_champion=state.baseline_metric, should_abandon=lambda: interrupts.abandon,
            after_candidate=lambda: None, pristine=sampler.pristine,
        )  # fmt: skip
        self.display.message(f"Confirmation race: the champion against the baseline, {pairs} pair{'s' if pairs > 1 else ''}…")
        rng = random.Random(f"{self.config.verdict.seed}/{self.run_name}/confirm")
        champion_samples: list[float] = []
        baseline_samples: list[float] = []
        try:
            for _ in range(pairs):
                if interrupts.abandon:
                    return
                if rng.random() < 0.5:
                    champion_samples.append(confirm.candidate())
                    baseline_samples.append(confirm.champion())
                else:
                    baseline_samples.append(confirm.champion())
                    champion_samples.append(confirm.candidate())
        except MeasurementFailed as exc:
            self.display.warning(f"confirmation race failed: {exc.failure.reason}")
            return
        result = confirmation(self.config, baseline_samples, champion_samples)
        ledger.add_event(self.run_name, "confirmation", {**result, "fingerprint": self.fingerprint}, after_experiment=state.history[-1].id)
        self.display.message(result["summary"])

    def _summary(self, ledger: Ledger, info: RunInfo, stop_reason: str) -> RunSummary:
        experiments = ledger.experiments(self.run_name)
        counts: dict[str, int] = {}
        for e in experiments:
            if e.verdict:
                counts[e.verdict.value] = counts.get(e.verdict.value, 0) + 1
        baseline = next((e.metric for e in experiments if e.verdict is Verdict.BASELINE), None)
        champion = next((e.metric for e in reversed(experiments) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
        return RunSummary(
            run=self.run_name,
            branch=self.workspace.branch,
            stop_reason=stop_reason,
            baseline_metric=baseline,
            champion_metric=champion,
            champion_commit=self.workspace.champion(),
            counts=counts,
        )


def review_branch(run: str, experiment_id: int) -> str:
    """Where a held candidate waits. Not under ``ratchet/<run>/``: git cannot have a branch
    ``ratchet/<run>`` and branches below it at once."""
    return f"ratchet-review/{run}/{experiment_id}"


def _measured_before(state: _State, change_id: str) -> Experiment | None:
    """The last experiment that measured this very change on the current champion, if any."""
    for earlier in reversed(state.history):
        if earlier.parent_commit != state.champion:
            continue
        if earlier.extra.get("change_id") == change_id and earlier.verdict not in (None, Verdict.INVALID, Verdict.ABANDONED):
            return earlier
    return None


class _Given(Proposer):
    """The proposer of ``ratchet try``: the proposal was made before the experiment started."""

    kind = "try"
    refuses_repeats = True

    def __init__(self, proposal: Proposal, kind: str = "try") -> None:
        self.proposal = proposal
        self.kind = kind

    def propose(self, context: ProposalContext) -> Proposal:
        return self.proposal


def confirmation(config: Config, baseline: list[float], champion: list[float]) -> dict[str, Any]:
    """The total gain of the champion over the baseline with a 95% confidence interval."""
    direction = config.metric.direction
    log_scale = config.verdict.scale != "absolute" and min(baseline + champion) > 0 and (
        config.verdict.scale == "log" or config.verdict.min_effect.relative
    )
    diffs = [improvement_of(direction, b, c, log_scale) for b, c in zip(baseline, champion)]
    mean, low, high = confidence_interval(diffs) if len(diffs) > 1 else (diffs[0], diffs[0], diffs[0])
    better = "lower" if direction == "minimize" else "higher"
    if log_scale:
        # As a fraction of the baseline, positive when better: 1 - c/b when minimizing, c/b - 1
        # when maximizing (both increase with the log difference, so the interval maps over).
        def as_gain(d: float) -> float:
            return -math.expm1(-d) if direction == "minimize" else math.expm1(d)

        gain, low_gain, high_gain = (as_gain(v) for v in (mean, low, high))
        shown = f"{abs(gain):.2%} {better if gain >= 0 else 'worse'}"
        interval = f" (95% CI {low_gain:+.2%} .. {high_gain:+.2%} better)"
    else:
        gain, low_gain, high_gain = mean, low, high
        shown = f"{abs(gain):.6g} {better if gain >= 0 else 'worse'}"
        interval = f" (95% CI {low_gain:+.6g} .. {high_gain:+.6g} better)"
    # One pair has no spread to build an interval on: say so rather than print a zero-width one.
    shown += interval if len(diffs) > 1 else ""
    pairs = f"over {len(diffs)} pairs" if len(diffs) > 1 else "over 1 pair, no interval"
    summary = f"Confirmed: the champion's {config.metric.name} is {shown} than the baseline's, {pairs}"
    return {
        "pairs": len(diffs), "scale": "log" if log_scale else "absolute", "gain": gain, "ci_low": low_gain,
        "ci_high": high_gain, "baseline_samples": baseline, "champion_samples": champion, "summary": summary,
    }  # fmt: skip


def _without_holdout(experiment: Experiment) -> Experiment:
    """The proposer never sees the holdout metric: not its values, not the reasons that quote them."""
    if "holdout" not in experiment.extra and "overfit" not in experiment.extra:
        return experiment
    extra = {k: v for k, v in experiment.extra.items() if k not in ("holdout", "overfit")}
    reason = experiment.reason
    for marker in (", but holdout got worse", "; FLAGGED overfit", ", but the holdout failed"):
        if marker in reason:
            reason = reason.split(marker)[0] + ", but a check the proposer cannot see failed (overfit)"
    return dataclasses.replace(experiment, extra=extra, reason=reason)


def _noise_from(event: dict[str, Any]) -> Noise:
    return Noise(
        pairs=event["pairs"], sd_single=event["sd_single"], sd_pair=event["sd_pair"], mean=event["mean"],
        log_scale=event["scale"] == "log",
    )  # fmt: skip


def _gb(rss: int | None) -> float | None:
    return None if rss is None else rss / 1024**3


__all__ = [
    "EXIT_CONFIG", "EXIT_DONE", "EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "Loop", "RunError", "RunSummary",
    "run_lock", "run_lock_holder",
]  # fmt: skip
