"""One experiment as a state machine, driven step by step the way a scheduler holds many; and what
the loop announces to a RunObserver."""

from __future__ import annotations

from pathlib import Path

from conftest import Scripted, number

from ratchet import Ledger, Loop, Proposal, Verdict
from ratchet.config import load_config
from ratchet.events import RunObserver, RunSummary
from ratchet.experiment import Experiment
from ratchet.loop.experiment import ExperimentRun, Step
from ratchet.loop.resume import open_run, repair
from ratchet.loop.state import Interrupts


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def experiment_started(self, experiment: Experiment) -> None:
        self.events.append(("started", experiment.id))

    def sample(self, experiment: Experiment, role: str, value: float) -> None:
        self.events.append(("sample", experiment.id, role, value))

    def experiment_done(self, experiment: Experiment) -> None:
        self.events.append(("done", experiment.id, experiment.verdict))

    def finish(self, summary: RunSummary) -> None:
        self.events.append(("finish", summary.stop_reason))


def _experiments(repo: Path, proposals: list[Proposal]) -> list[ExperimentRun]:
    """Each proposal as its own ExperimentRun on the run's champion, every step taken by hand."""
    loop = Loop(repo, load_config(repo / "ratchet.toml"), observer=Recorder())
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    runs = []
    try:
        info = open_run(loop.parts, ledger)
        loop.workspace.open_worktree()
        repair(loop.parts, ledger, info)
        with Interrupts(loop.parts.observer) as interrupts:
            state = loop._start(ledger, info, interrupts)
            for proposal in proposals:
                run = ExperimentRun(loop.parts, ledger, loop.measurement, loop.contexts, state, interrupts, Scripted([proposal]))
                assert run.step is Step.STARTED
                if run.propose():
                    assert run.step is Step.PROPOSED
                    if run.materialize():
                        assert run.step is Step.MATERIALIZED
                        run.measure()
                        assert run.step is Step.DECIDED and run.decision is not None
                        run.conclude()
                state.record(run.experiment, loop.parts.fingerprint)
                runs.append(run)
    finally:
        ledger.close()
    return runs


def test_each_transition_moves_the_step_and_every_ending_is_recorded(number_repo):
    repo = number_repo()
    outside = Proposal(hypothesis="outside the scope", edits={"bench.sh": "echo 1\n"})
    kept, discarded, failed = _experiments(repo, [number(7, "better"), number(9, "worse"), outside])
    assert (kept.step, discarded.step, failed.step) == (Step.KEPT, Step.DISCARDED, Step.FAILED)
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    rows = {e.id: e for e in ledger.experiments("t")}
    assert rows[kept.experiment.id].verdict is Verdict.KEEP and rows[kept.experiment.id].commit
    assert rows[discarded.experiment.id].verdict is Verdict.DISCARD and rows[discarded.experiment.id].metric == 9.0
    assert rows[failed.experiment.id].verdict is Verdict.INVALID and "rejected before measuring" in rows[failed.experiment.id].reason
    assert all(e.state == "done" for e in rows.values())
    # The kept experiment is the new champion the next ones were built on.
    assert discarded.experiment.parent_commit == kept.experiment.commit


def test_an_observer_hears_each_experiment_its_samples_and_the_end(number_repo):
    repo = number_repo()
    recorder = Recorder()
    Loop(repo, load_config(repo / "ratchet.toml"), proposer=Scripted([number(7), number(9)]), iterations=2, observer=recorder).run()
    assert recorder.events[:3] == [("started", 0), ("sample", 0, "candidate", 10.0), ("done", 0, Verdict.BASELINE)]
    first = recorder.events.index(("started", 1))
    assert ("sample", 1, "candidate", 7.0) in recorder.events[first:]
    assert ("done", 1, Verdict.KEEP) in recorder.events and ("done", 2, Verdict.DISCARD) in recorder.events
    assert recorder.events[-1][0] == "finish"
