"""Several experiments in flight (``[run] workers = N``): the driver starts them, the workers run them.

Each worker slot has its own worktree, champion checkout and executor view
(:class:`~ratchet.workspace.slots.SlotWorkspace`, a :class:`~ratchet.loop.measurement.Measurement`
of its own), and runs one :class:`~ratchet.loop.experiment.ExperimentRun` at a time in a thread:
propose, materialize, measure — the pair's two sides by the same worker, close in time. What
decides the run happens under the shared state's lock: a keep is committed only against the
champion of that moment (otherwise the candidate is re-applied to the new champion and measured
again, or recorded stale). The driver thread alone starts experiments, takes their results in
order of completion into the run's state, tells the proposer, and stops when the budget says so,
counting the experiments in flight (it never starts one the iteration budget has no room for;
wall, token and money budgets can be overshot by the work in flight, and it says so).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, replace
from typing import Any

from ratchet.budget import Progress
from ratchet.config import Config
from ratchet.events import EXIT_DONE, EXIT_FAILURES, EXIT_INTERRUPTED
from ratchet.executors import Executor
from ratchet.experiment import Verdict
from ratchet.ledger import Ledger
from ratchet.loop.context import ContextBuilder
from ratchet.loop.experiment import ExperimentRun
from ratchet.loop.measurement import Measurement
from ratchet.loop.noise import calibrate
from ratchet.loop.parts import Parts
from ratchet.loop.state import Interrupts, RunState, SharedState
from ratchet.proposers import Outcome, Proposal, ProposalContext, Proposer
from ratchet.proposers.base import BudgetExhausted
from ratchet.workspace.slots import SlotWorkspace

# How often the driver wakes while every worker is busy: the session's clock and the progress line.
_TICK_SECONDS = 1.0


@dataclass
class Slot:
    """One worker: its worktree, its measuring step, the experiment it runs now."""

    index: int
    workspace: SlotWorkspace
    measurement: Measurement
    run: ExperimentRun | None = None


@dataclass
class _Done:
    slot: Slot
    run: ExperimentRun
    error: BaseException | None


class Scheduler:
    """Up to ``workers`` experiments in flight until the budget ends; returns why it stopped."""

    def __init__(
        self, parts: Parts, ledger: Ledger, session: int, proposer: Proposer, state: RunState, interrupts: Interrupts,
        contexts: ContextBuilder, calibration: Measurement, executors: list[Executor],
    ) -> None:  # fmt: skip
        self.parts, self.ledger, self.session, self.state = parts, ledger, session, state
        self.interrupts, self.contexts, self.calibration = interrupts, contexts, calibration
        self.proposer = proposer if proposer.concurrent else _OneCallAtATime(proposer)
        self.shared = SharedState(state)
        self.slots = [self._slot(index, executor) for index, executor in enumerate(executors)]
        self._done: queue.Queue[_Done] = queue.Queue()
        self._said_overshoot = False

    def _slot(self, index: int, executor: Executor) -> Slot:
        parts, ws = self.parts, self.parts.workspace
        workspace = SlotWorkspace(parts.repo_root, parts.run_name, ws.scope, ws.harness, index)
        workspace.open_at(self.state.champion)
        measurement = Measurement(parts, workspace, executor)
        measurement.reserve_test = self.shared.reserve_test
        return Slot(index, workspace, measurement)

    # ------------------------------------------------------------ the driver

    def run(self) -> tuple[str, int]:
        parts, interrupts = self.parts, self.interrupts
        stopping: tuple[str, int] | None = None
        error: BaseException | None = None
        while True:
            self.ledger.touch_session(self.session)
            progress = self._progress()
            parts.observer.progress(progress, parts.budget, self.state.baseline_metric, self.state.champion_metric)
            if stopping is None and interrupts.stop:
                stopping = ("interrupted (Ctrl-C)", EXIT_INTERRUPTED)
            if stopping is None:
                self._start_experiments(progress)
            busy = [slot for slot in self.slots if slot.run is not None]
            if not busy:
                if stopping is not None:
                    break
                stop = parts.budget.stop(progress)
                if stop is not None:
                    stopping = (stop.reason, EXIT_FAILURES if stop.failed else EXIT_DONE)
                    break
                continue  # room again: an experiment in flight did not count
            try:
                done = self._done.get(timeout=_TICK_SECONDS)
            except queue.Empty:
                continue
            done.slot.run = None
            if isinstance(done.error, BudgetExhausted):
                stopping = stopping or (str(done.error), EXIT_DONE)
                self._drain_message(stopping[0])
                continue
            if done.error is not None:
                # A run-stopping error (git failing, a fatal proposer error, a bug): the others
                # finish their experiment (or are abandoned), then the error stops the run.
                error = error or done.error
                stopping = stopping or ("error", EXIT_FAILURES)
                interrupts.stop = True
                continue
            self._take(done.run)
        if error is not None:
            raise error
        return stopping

    def _start_experiments(self, progress: Progress) -> None:
        for slot in self.slots:
            if slot.run is not None:
                continue
            in_flight = [s.run.experiment for s in self.slots if s.run is not None]
            planned = replace(progress, measured=progress.measured + len(in_flight))
            if (stop := self.parts.budget.stop(planned)) is not None:
                if in_flight and self.parts.budget.stop(progress) is not None:
                    self._drain_message(stop.reason)
                return
            snapshot = self.shared.snapshot()
            snapshot.progress = progress
            slot.run = ExperimentRun(
                self.parts, self.ledger, slot.measurement, self.contexts, snapshot, self.interrupts, self.proposer,
                shared=self.shared, in_flight=tuple(in_flight), worker=slot.index,
            )  # fmt: skip
            threading.Thread(target=self._work, args=(slot, slot.run), name=f"ratchet-worker-{slot.index}", daemon=True).start()

    def _drain_message(self, reason: str) -> None:
        busy = sum(slot.run is not None for slot in self.slots)
        if busy and not self._said_overshoot:
            self._said_overshoot = True
            self.parts.observer.message(
                f"{reason}: no new experiment; the {busy} in flight finish first (they may spend past the budget)."
            )

    def _take(self, run: ExperimentRun) -> None:
        """A finished experiment into the run's state; the proposer and the observer told."""
        parts, experiment = self.parts, run.experiment
        assert experiment.verdict is not None
        self.shared.record(experiment, parts.fingerprint)
        every = parts.config.verdict.recalibrate_every
        if every and experiment.verdict.counts_as_iteration and self.state.measured % every == 0:
            # The champion of now against itself, while the workers go on: the noise they measure under.
            calibrate(parts, self.ledger, self.calibration, self.shared.snapshot(), self.interrupts, after=experiment.id)
        guards_passed = all(guard.passed for guard in experiment.guards)
        self.proposer.observe(Outcome(experiment.id, experiment.verdict, experiment.metric, run.proposal, guards_passed))
        parts.observer.experiment_done(experiment)
        if experiment.verdict is Verdict.TAMPERED:
            parts.observer.alarm(f"experiment {experiment.id} TAMPERED with the harness: {experiment.reason}")

    def _progress(self) -> Progress:
        tokens, cost = self.ledger.spent(self.parts.run_name)
        with self.shared.lock:
            state = self.state
            return Progress(
                measured=state.measured,
                wall_spent=self.ledger.wall_spent(self.parts.run_name),
                champion_metric=state.champion_metric,
                consecutive_failures=state.consecutive_failures,
                tokens_spent=tokens,
                cost_spent=cost,
            )

    # ------------------------------------------------------------ a worker

    def _work(self, slot: Slot, run: ExperimentRun) -> None:
        error: BaseException | None = None
        try:
            slot.workspace.move_to(run.state.champion)
            run.run()
        except BaseException as exc:  # handed to the driver, which decides what it means
            error = exc
        self._done.put(_Done(slot, run, error))

    def close(self) -> None:
        """The run's own worktree back at the branch tip the workers moved (it was not used meanwhile)."""
        self.parts.workspace.reset_clean()


class _OneCallAtATime(Proposer):
    """A proposer that cannot propose concurrently, called one call at a time by the workers."""

    def __init__(self, proposer: Proposer) -> None:
        self.inner = proposer
        self.kind = proposer.kind
        self.refuses_repeats = proposer.refuses_repeats
        self._lock = threading.Lock()

    def propose(self, context: ProposalContext) -> Proposal:
        with self._lock:
            return self.inner.propose(context)

    def mend(self, context: ProposalContext) -> Proposal | None:
        with self._lock:
            return self.inner.mend(context)

    def observe(self, outcome: Outcome) -> None:
        with self._lock:
            self.inner.observe(outcome)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def worker_count(config: Config, requested: int | None = None) -> int:
    """How many workers a run gets: ``--workers``, else ``[run] workers``."""
    return max(1, requested if requested is not None else config.run.workers)

