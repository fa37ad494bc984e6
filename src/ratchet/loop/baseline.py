"""Experiment 0: the champion at the start of the run, measured once with its guards and holdout.

Every later number is compared with what grows from it, so a baseline that fails stops the run
and leaves nothing behind (no branch, no worktree, no experiment row) but its logs.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ratchet.executors.sampler import MeasurementFailed
from ratchet.experiment import Experiment, GuardResult, Verdict, guard_failures
from ratchet.ledger import Ledger, RunInfo
from ratchet.loop.measurement import Measurement, gigabytes
from ratchet.loop.parts import Parts
from ratchet.loop.resume import set_aside_failed_baseline
from ratchet.loop.state import Interrupts, RunState, state_from_history
from ratchet.state import RunError
from ratchet.verdict import Decision


def baseline_state(parts: Parts, ledger: Ledger, measurement: Measurement, info: RunInfo, interrupts: Interrupts) -> RunState:
    """The state the loop starts from: the ledger's, after measuring the baseline if it has none."""
    history = ledger.experiments(parts.run_name)
    for earlier in history:  # a resumed run's history holds no tail text: the ledger has it
        if earlier.output_tail:
            earlier.output_tail = LedgerTail(ledger, earlier.run, earlier.id)
    champion = parts.workspace.champion()
    if not any(e.verdict is Verdict.BASELINE for e in history):
        history.append(measure_baseline(parts, ledger, measurement, champion, info, interrupts))
    return state_from_history(history, champion, info.base_commit)


@dataclass(frozen=True, slots=True)
class LedgerTail:
    """An earlier experiment's output tail, read from its ledger row when asked for ("" once the ledger is closed)."""

    ledger: Ledger
    run: str
    id: int

    def read(self) -> str:
        try:
            found = self.ledger.experiment(self.run, self.id)
        except sqlite3.Error:
            return ""
        return found.output_tail if found is not None else ""


def measure_baseline(
    parts: Parts, ledger: Ledger, measurement: Measurement, champion: str, info: RunInfo, interrupts: Interrupts
) -> Experiment:
    experiment = parts.new_experiment(ledger, champion, proposer="baseline")
    experiment.hypothesis = "baseline"
    parts.observer.experiment_started(experiment)
    value, failure, tail = _measure(parts, measurement, experiment, champion, info, interrupts)
    experiment.ended = time.time()
    experiment.state = "done"
    if failure is not None:
        experiment.verdict = Verdict.ABANDONED if failure.verdict is Verdict.ABANDONED else failure.verdict
        experiment.reason = "baseline: " + failure.reason
        ledger.update(experiment)
        parts.workspace.discard()
        set_aside_failed_baseline(parts, ledger, experiment)
        parts.workspace.remove_run(info.base_commit)
        raise RunError(
            f"the baseline measurement failed ({failure.verdict}): {failure.reason}"
            + (f"\n{tail}" if tail and failure.verdict is not Verdict.TAMPERED else "")
            + f"\nlogs: {experiment.log_dir}"
            + f"\nnothing was kept: branch {parts.workspace.branch} and its worktree are removed; fix the cause and run again"
        )
    experiment.verdict = Verdict.BASELINE
    experiment.metric = value
    experiment.reason = "the champion at the start of the run"
    experiment.extra["fingerprint"] = parts.fingerprint
    ledger.update(experiment)
    parts.workspace.discard()
    parts.observer.experiment_done(experiment)
    return experiment


def _measure(
    parts: Parts, measurement: Measurement, experiment: Experiment, champion: str, info: RunInfo, interrupts: Interrupts
) -> tuple[float | None, Decision | None, str]:
    """The baseline's one metric sample, then its guards and holdout: (value, failure, output tail)."""
    log_dir = Path(experiment.log_dir)
    state = RunState(
        champion=champion, champion_metric=math.nan, baseline_metric=math.nan, champion_guards={},
        measured=0, consecutive_failures=0, history=[], base_commit=info.base_commit,
        champion_fingerprint=parts.fingerprint,
    )  # fmt: skip
    sampler = measurement.sampler(state, log_dir, interrupts)
    failure: Decision | None = None
    value: float | None = None
    try:
        value = sampler.candidate()
        parts.observer.sample(experiment, "candidate", value)
    except MeasurementFailed as exc:
        failure = Decision(exc.failure.verdict, exc.failure.reason)
        if failure.verdict is Verdict.TAMPERED:
            reason = failure.reason.replace("harness changed during measurement", "the metric command itself changes harness files")
            failure = Decision(Verdict.TAMPERED, reason)
    last = sampler.last_candidate_result()
    if last is not None:
        experiment.memory_gb = gigabytes(last.max_rss_bytes)
        experiment.output_tail = last.log_tail()  # read from disk when asked for
    guards: list[GuardResult] = []
    tail = last.tail(600).strip() if last is not None else ""
    if failure is None:
        guards = measurement.run_guards(log_dir, {}, interrupts)
        failed = [g for g in guards if not g.passed]
        if failed:
            failure = Decision(Verdict.CRASH, "guard fails on the baseline: " + ", ".join(f"{g.name} ({g.reason})" for g in failed))
            tail = guard_failures(failed)
    if failure is None and parts.config.holdout is not None:
        holdout, problem = measurement.holdout_value(log_dir, interrupts)
        if holdout is None:
            failure = Decision(Verdict.CRASH, f"the holdout fails on the baseline: {problem}")
        experiment.extra["holdout"] = holdout
    experiment.guards = guards
    return value, failure, tail
