"""What the loop knows between experiments: the champion and its scores, the counts the budget
reads, and whether the user asked to stop."""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Callable, Iterator

from ratchet.budget import Progress
from ratchet.events import RunObserver
from ratchet.experiment import Experiment, Verdict


@dataclass
class RunState:
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
    champion_id: int | None = None  # the experiment that made the champion (None: the baseline's, or unknown)
    # (experiments counted, tests, keeps, first fdr_horizon): the history's counts kept up to
    # date by the entries added since, not summed over the whole history per experiment.
    _tally: tuple[int, int, int, int | None] = field(default=(0, 0, 0, None), repr=False, compare=False)

    def tally(self) -> tuple[int, int, int | None]:
        """The run's statistical tests so far, its keeps, and the error control's recorded horizon."""
        counted, tests, keeps, horizon = self._tally
        if counted > len(self.history):
            counted, tests, keeps, horizon = 0, 0, 0, None  # another history: count again
        for experiment in self.history[counted:]:
            tests += int(experiment.extra.get("tests", 0))
            keeps += experiment.verdict is Verdict.KEEP
            if horizon is None and "fdr_horizon" in experiment.extra:
                horizon = int(experiment.extra["fdr_horizon"])
        self._tally = (len(self.history), tests, keeps, horizon)
        return tests, keeps, horizon

    def record(self, experiment: Experiment, fingerprint: str, *, champion: bool = True) -> None:
        """Take a finished experiment into the state: counts, failures in a row, a new champion
        (unless ``champion`` is False: a scheduler's keep took the champion when it committed)."""
        assert experiment.verdict is not None
        self.history.append(experiment)
        if experiment.verdict.counts_as_iteration:
            self.measured += 1
        if _is_failure(experiment):
            self.consecutive_failures += 1
        elif experiment.verdict is not Verdict.ABANDONED:
            self.consecutive_failures = 0
        if experiment.verdict is Verdict.KEEP and champion:
            self.take_champion(experiment, fingerprint)

    def take_champion(self, experiment: Experiment, fingerprint: str) -> None:
        """A keep's commit becomes the champion, with its scores."""
        assert experiment.commit is not None and experiment.metric is not None
        self.champion = experiment.commit
        self.champion_id = experiment.id
        self.champion_metric = experiment.metric
        self.champion_guards = _guard_values(experiment)
        self.champion_fingerprint = fingerprint
        if "holdout" in experiment.extra:
            self.champion_holdout = experiment.extra["holdout"]


class SharedState:
    """The run's state as the workers of a scheduler share it. The champion moves only under
    ``lock`` (a keep decides and commits holding it); each worker measures against a snapshot."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.lock = threading.Lock()
        # Run-level error control: tests reserved by experiments still in flight, by id.
        self._open_tests: dict[int, int] = {}
        # Would-be keeps waiting for their verdict, first come first decided.
        self._turns = threading.Condition()
        self._queue: list[int] = []

    @contextlib.contextmanager
    def turn(self, experiment_id: int, give_up: Callable[[], bool]) -> Iterator[bool]:
        """Wait for this would-be keep's turn to be decided (would-be keeps queue in the order
        they came); yields False if ``give_up()`` said so first. The turn ends with the block."""
        with self._turns:
            self._queue.append(experiment_id)
            while self._queue[0] != experiment_id and not give_up():
                self._turns.wait(timeout=0.5)
            mine = self._queue[0] == experiment_id
        try:
            yield mine
        finally:
            with self._turns:
                self._queue.remove(experiment_id)
                self._turns.notify_all()

    def snapshot(self) -> RunState:
        with self.lock:
            return self.snapshot_locked()

    def snapshot_locked(self) -> RunState:
        """A copy a worker can read while the driver goes on (call holding ``lock``)."""
        state = self.state
        return replace(state, history=list(state.history), champion_guards=dict(state.champion_guards))

    def record(self, experiment: Experiment, fingerprint: str) -> None:
        with self.lock:
            self.state.record(experiment, fingerprint, champion=False)
            self._open_tests.pop(experiment.id, None)

    def reserve_test(self, experiment_id: int) -> tuple[int, int]:
        """(tests made before this one, keeps known): every test of the run gets its own index,
        those of experiments in flight counted, so no two share the error budget of one."""
        with self.lock:
            tests, keeps, _ = self.state.tally()
            tests += sum(self._open_tests.values())
            self._open_tests[experiment_id] = self._open_tests.get(experiment_id, 0) + 1
            return tests, keeps


def state_from_history(history: list[Experiment], champion: str, base_commit: str) -> RunState:
    """The state a resumed run goes on from: its ledger's experiments, the baseline among them."""
    baseline = next(e for e in history if e.verdict is Verdict.BASELINE)
    assert baseline.metric is not None
    last_keep = next((e for e in reversed(history) if e.verdict in (Verdict.KEEP, Verdict.BASELINE)), baseline)
    assert last_keep.metric is not None
    failures = 0
    for experiment in reversed(history):
        if experiment.verdict is None or experiment.verdict is Verdict.ABANDONED:
            continue
        if not _is_failure(experiment):
            break
        failures += 1
    return RunState(
        champion=champion,
        champion_metric=last_keep.metric,
        baseline_metric=baseline.metric,
        champion_guards=_guard_values(last_keep),
        measured=sum(1 for e in history if e.verdict and e.verdict.counts_as_iteration),
        consecutive_failures=failures,
        history=history,
        base_commit=base_commit,
        champion_fingerprint=last_keep.hardware,
        champion_holdout=last_keep.extra.get("holdout"),
        champion_id=last_keep.id if last_keep.verdict is Verdict.KEEP else None,
    )


def measured_before(state: RunState, change_id: str) -> Experiment | None:
    """The last experiment that measured this very change on the current champion, if any."""
    for earlier in reversed(state.history):
        if earlier.parent_commit != state.champion:
            continue
        if earlier.extra.get("change_id") == change_id and earlier.verdict not in (None, Verdict.INVALID, Verdict.ABANDONED):
            return earlier
    return None


def _is_failure(experiment: Experiment) -> bool:
    # A proposer that fails to propose counts toward the failures-in-a-row stop like a crash.
    assert experiment.verdict is not None
    return experiment.verdict.is_failure or experiment.reason.startswith("proposer:")


def _guard_values(experiment: Experiment) -> dict[str, float]:
    return {g.name: g.value for g in experiment.guards if g.value is not None}


class Interrupts:
    """First Ctrl-C: finish the experiment in flight, then stop. Second (or SIGTERM): abandon it."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer
        self.stop = False
        self.abandon = False
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and not self.stop:
            self.stop = True
            self.observer.message("Stopping after the experiment in flight (Ctrl-C again to abandon it).")
            return
        self.stop = self.abandon = True
        self.observer.message("Abandoning the experiment in flight.")
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a third Ctrl-C is a hard stop

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
