"""Rework: a candidate whose metric would keep it but whose guards failed gets the guards' output
back and up to ``[verdict] rework`` tries to mend itself, each measured like the first."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.experiment import Experiment, Verdict
from ratchet.loop.usage import add_usage
from ratchet.proposers import ProposerError
from ratchet.verdict import Decision
from ratchet.workspace.worktree import GitTampered, ScopeViolation

if TYPE_CHECKING:
    from ratchet.loop.experiment import ExperimentRun


def rework(run: ExperimentRun) -> None:
    """Mend ``run``'s candidate in place: its decision, leftovers and candidate become the last try's."""
    experiment, parts = run.experiment, run.parts
    assert run.decision is not None and run.candidate is not None and run.context is not None
    tries: list[dict[str, Any]] = experiment.extra.setdefault("rework", [])
    for attempt in range(1, parts.config.verdict.rework + 1):
        if run.interrupts.abandon or not guard_failed(experiment, run.decision):
            break
        feedback = guard_feedback(experiment, run.log_dir if attempt == 1 else run.log_dir / f"rework-{attempt - 1}")
        attempt_dir = run.log_dir / f"rework-{attempt}"
        attempt_dir.mkdir(parents=True, exist_ok=True)
        run.workspace.drop_leftovers(run.candidate)  # the proposer sees its candidate, not build products
        try:
            mended = run.proposer.mend(dataclasses.replace(run.context, rework=feedback, log_dir=attempt_dir))
        except ProposerError as exc:
            tries.append({"try": attempt, "error": str(exc)})
            break
        if mended is None:
            break
        if mended.usage is not None:
            add_usage(experiment, mended.usage)
        try:
            run.workspace.materialize(mended, attempt_dir / "proposal.patch", run.state.champion)
            run.candidate = run.workspace.check_scope(diff=None)  # the candidate, mended: all its changes
        except ScopeViolation as exc:
            if "changes nothing" in str(exc):  # no further change: the candidate stays as it was
                tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": "no change"})
                continue
            tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": f"rejected: {exc}"})
            verdict = Verdict.TAMPERED if isinstance(exc, GitTampered) else Verdict.INVALID
            run.decision, run.leftovers = Decision(verdict, f"rework {attempt} rejected: {exc}"), run.workspace.leftovers()
            return
        run.save_diff(run.candidate)
        run.measure_copies_of(run.candidate)
        experiment.extra["change_id"] = run.workspace.change_id(run.candidate)
        experiment.hypothesis = f"{experiment.hypothesis} (mended: {mended.hypothesis})"
        experiment.guards = []
        run.ledger.update(experiment)
        run.decision, run.leftovers = run.measurement.measure_and_decide(experiment, run.state, attempt_dir, run.interrupts)
        tries.append({"try": attempt, "hypothesis": mended.hypothesis, "result": str(run.decision.verdict)})


def guard_failed(experiment: Experiment, decision: Decision) -> bool:
    return decision.verdict is Verdict.DISCARD and any(not g.passed for g in experiment.guards)


def guard_feedback(experiment: Experiment, log_dir: Path) -> str:
    """The failed guards' reasons and the tails of their output, as the proposer is told them."""
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
