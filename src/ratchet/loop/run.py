"""The loop's facade: open or resume a run, then experiments until the budget ends (or one
experiment for ``ratchet try``), then the confirmation race and the summary.

Each step lives in its own module beside this one; this one only orders them and keeps the
ledger and the run branch in agreement, so that a kill -9 at any moment leaves a state the next
``ratchet run`` repairs.
"""

from __future__ import annotations

from pathlib import Path

from ratchet.budget import Budget, Progress
from ratchet.config import Config
from ratchet.events import (
    EXIT_DONE,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    RunObserver,
    RunSummary,
)
from ratchet.executors import Executor, LocalExecutor, create_executor
from ratchet.experiment import Experiment, Verdict
from ratchet.ledger import LEDGER_FILE, Ledger, RunInfo
from ratchet.loop.baseline import baseline_state
from ratchet.loop.context import ContextBuilder
from ratchet.loop.experiment import ExperimentRun
from ratchet.loop.measurement import Measurement
from ratchet.loop.noise import calibrate, confirm, know_noise
from ratchet.loop.parts import Parts
from ratchet.loop.resume import open_run, repair, save_stopped_diffs
from ratchet.loop.scheduler import Scheduler, worker_count
from ratchet.loop.state import Interrupts, RunState
from ratchet.measure.hardware import fingerprint, hardware_info
from ratchet.proposers import (
    Outcome,
    Proposal,
    ProposalContext,
    Proposer,
    ProposerError,
    create_proposer,
)
from ratchet.proposers.base import BudgetExhausted
from ratchet.state import RunError, run_lock
from ratchet.workspace.git import exclude_state_dir
from ratchet.workspace.scope import Globs
from ratchet.workspace.worktree import Workspace


class Loop:
    """One run of the autoresearch loop on a repository."""

    def __init__(
        self,
        repo_root: Path,
        config: Config,
        *,
        iterations: int | None = None,
        observer: RunObserver | None = None,
        proposer: Proposer | None = None,
        executor: Executor | None = None,
        workers: int | None = None,
    ) -> None:
        workspace = Workspace(repo_root, config.run.name, Globs(config.scope.mutable), Globs(config.scope.harness))
        hardware = hardware_info()
        self.parts = Parts(
            repo_root=repo_root,
            config=config,
            observer=observer or RunObserver(),
            executor=executor or create_executor(config, repo_root),
            budget=Budget(config.budget, config.metric.direction, iterations),
            workspace=workspace,
            hardware=hardware,
            fingerprint=fingerprint(hardware),
        )
        self.workspace = workspace
        self.measurement = Measurement(self.parts)
        self.contexts = ContextBuilder(self.parts)
        self._proposer = proposer
        self.workers = worker_count(config, workers)

    def run(self) -> RunSummary:
        parts = self.parts
        exclude_state_dir(parts.repo_root)
        with run_lock(parts.state_dir, parts.run_name):
            ledger = Ledger(parts.state_dir / LEDGER_FILE)
            try:
                return self._run(ledger)
            finally:
                ledger.close()

    def try_proposal(self, proposal: Proposal, kind: str = "try") -> Experiment:
        """One experiment with a proposal made elsewhere (``ratchet try``, the MCP server).

        The same steps as the loop's (scope check, the run's verdict policy, keep or discard,
        ledger); refuses while a ``ratchet run`` holds the run. No budget applies: whoever calls
        decides when to stop.
        """
        parts = self.parts
        exclude_state_dir(parts.repo_root)
        with run_lock(parts.state_dir, parts.run_name):
            ledger = Ledger(parts.state_dir / LEDGER_FILE)
            try:
                info = open_run(parts, ledger)
                save_stopped_diffs(parts, ledger)
                self.workspace.open_worktree()
                repair(parts, ledger, info)
                session = ledger.start_session(parts.run_name)
                try:
                    with Interrupts(parts.observer) as interrupts:
                        state = self._start(ledger, info, interrupts)
                        parts.observer.champion_is(state.baseline_metric, state.champion_metric)
                        return self._experiment(ledger, _Given(proposal, kind), state, interrupts).experiment
                finally:
                    ledger.touch_session(session)
            finally:
                ledger.close()

    # ------------------------------------------------------------ steps

    def _run(self, ledger: Ledger) -> RunSummary:
        parts = self.parts
        info = open_run(parts, ledger)
        parts.observer.start(info, parts.config, resumed=bool(ledger.experiments(parts.run_name)))
        if warning := getattr(parts.executor, "warning", None):  # no sandbox: say so, once
            parts.observer.warning(warning)
        # Each worker's executor view before the baseline: too few devices or cores stop the run now.
        views = [parts.executor.worker(index) for index in range(self.workers)] if self.workers > 1 else []
        if views and isinstance(parts.executor, LocalExecutor) and parts.executor.containment.sandbox is None:
            # Without the sandbox, leftovers are found among this process's children: another worker's
            # command would be taken for one and killed.
            raise RunError("several workers need the sandbox (bubblewrap) here: install it, or run with --workers 1")
        save_stopped_diffs(parts, ledger)
        self.workspace.open_worktree()
        repair(parts, ledger, info)
        session = ledger.start_session(parts.run_name)
        proposer = self._proposer or create_proposer(parts.config, root=parts.repo_root)
        try:
            with Interrupts(parts.observer) as interrupts:
                state = self._start(ledger, info, interrupts)
                try:
                    proposer.resume(tuple(state.history), parts.run_dir / "proposer")
                except ProposerError as exc:
                    raise RunError(f"the {proposer.kind} proposer cannot start: {exc}") from None
                if views:
                    stop_reason, exit_code = self._scheduled(ledger, session, proposer, state, interrupts, views)
                else:
                    stop_reason, exit_code = self._loop(ledger, session, proposer, state, interrupts)
                if not interrupts.stop:
                    confirm(parts, ledger, self.measurement, state, interrupts)
                if interrupts.stop:  # a Ctrl-C during the confirmation race is an interruption too
                    exit_code = EXIT_INTERRUPTED
        finally:
            ledger.touch_session(session)
            proposer.close()
        summary = self._summary(ledger, info, stop_reason)
        summary.exit_code = exit_code
        parts.observer.finish(summary)
        return summary

    def _start(self, ledger: Ledger, info: RunInfo, interrupts: Interrupts) -> RunState:
        """The baseline (measured if the run has none) and the noise (this machine's, or measured)."""
        state = baseline_state(self.parts, ledger, self.measurement, info, interrupts)
        know_noise(self.parts, ledger, self.measurement, state, interrupts)
        return state

    def _loop(self, ledger: Ledger, session: int, proposer: Proposer, state: RunState, interrupts: Interrupts) -> tuple[str, int]:
        """Experiments until the budget ends: returns why it stopped and the exit code that says so."""
        parts = self.parts
        while True:
            ledger.touch_session(session)
            state.progress = progress = self._progress(ledger, state)
            parts.observer.progress(progress, parts.budget, state.baseline_metric, state.champion_metric)
            if interrupts.stop:
                return "interrupted (Ctrl-C)", EXIT_INTERRUPTED
            if stop := parts.budget.stop(progress):
                return stop.reason, EXIT_FAILURES if stop.failed else EXIT_DONE
            try:
                run = self._experiment(ledger, proposer, state, interrupts)
            except BudgetExhausted as exc:
                return str(exc), EXIT_DONE
            experiment = run.experiment
            assert experiment.verdict is not None
            state.record(experiment, parts.fingerprint)
            every = parts.config.verdict.recalibrate_every
            if every and experiment.verdict.counts_as_iteration and state.measured % every == 0:
                calibrate(parts, ledger, self.measurement, state, interrupts, after=experiment.id)
            guards_passed = all(guard.passed for guard in experiment.guards)
            proposer.observe(Outcome(experiment.id, experiment.verdict, experiment.metric, run.proposal, guards_passed))
            parts.observer.experiment_done(experiment)
            if experiment.verdict is Verdict.TAMPERED:
                parts.observer.alarm(f"experiment {experiment.id} TAMPERED with the harness: {experiment.reason}")

    def _scheduled(
        self, ledger: Ledger, session: int, proposer: Proposer, state: RunState, interrupts: Interrupts, views: list[Executor]
    ) -> tuple[str, int]:
        """The loop with several experiments in flight (``[run] workers``), one executor view each."""
        scheduler = Scheduler(self.parts, ledger, session, proposer, state, interrupts, self.contexts, self.measurement, views)
        try:
            return scheduler.run()
        finally:
            scheduler.close()

    def _progress(self, ledger: Ledger, state: RunState) -> Progress:
        tokens, cost = ledger.spent(self.parts.run_name)
        return Progress(
            measured=state.measured,
            wall_spent=ledger.wall_spent(self.parts.run_name),
            champion_metric=state.champion_metric,
            consecutive_failures=state.consecutive_failures,
            tokens_spent=tokens,
            cost_spent=cost,
        )

    def _experiment(self, ledger: Ledger, proposer: Proposer, state: RunState, interrupts: Interrupts) -> ExperimentRun:
        run = ExperimentRun(self.parts, ledger, self.measurement, self.contexts, state, interrupts, proposer)
        run.run()
        return run

    def _summary(self, ledger: Ledger, info: RunInfo, stop_reason: str) -> RunSummary:
        experiments = ledger.experiments(self.parts.run_name)
        counts: dict[str, int] = {}
        for e in experiments:
            if e.verdict:
                counts[e.verdict.value] = counts.get(e.verdict.value, 0) + 1
        baseline = next((e.metric for e in experiments if e.verdict is Verdict.BASELINE), None)
        champion = next((e.metric for e in reversed(experiments) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), None)
        return RunSummary(
            run=self.parts.run_name,
            branch=self.workspace.branch,
            stop_reason=stop_reason,
            baseline_metric=baseline,
            champion_metric=champion,
            champion_commit=self.workspace.champion(),
            counts=counts,
        )


class _Given(Proposer):
    """The proposer of ``ratchet try``: the proposal was made before the experiment started."""

    kind = "try"
    refuses_repeats = True

    def __init__(self, proposal: Proposal, kind: str = "try") -> None:
        self.proposal = proposal
        self.kind = kind

    def propose(self, context: ProposalContext) -> Proposal:
        return self.proposal
